"""`mailappliance audit --nameserver` with real DNS: Knot on loopback serving the plan's zone. Probes and the host
run are recorded evidence here (test_audit.py, test_audit_probes.py cover them); what is real is the DNS side:
the plan `dns plan` builds, the lookups, and their folding into one control per DNS-* ID."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import auditfixtures as fx
import dnsfixtures
from clirunner import run_cli
from mailappliance.audit import run as audit_run
from mailappliance.audit.host import HostInspection
from mailappliance.controls import catalogue as cat
from mailappliance.dns import servers
from mailappliance.exit_codes import EXIT_CODE_AUDIT_FAILED

pytestmark = pytest.mark.skipif(not Path(dnsfixtures.KNOTD).exists() and os.environ.get("CI") != "true",
                                reason="knotd missing; scripts/install-host-deps installs knot")

HOST = dnsfixtures.HOSTNAME
DOMAINS = ("alpha.test", "beta.test")


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The DNS tests' site with what deploy would have published, and recorded probe and host evidence."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILAPPLIANCE_INVENTORY_ROOT", raising=False)
    monkeypatch.delenv("MAILAPPLIANCE_BUILD_ROOT", raising=False)
    root = tmp_path / "inventories"
    dnsfixtures.write_site(root)
    dnsfixtures.write_published(root)
    probes = fx.probes()
    for port in probes["ports"].values():
        port["certificate"]["dns_names"] = [HOST, *(f"mta-sts.{d}" for d in DOMAINS)]
    probes["mta_sts"] = {domain: fx.mta_sts(domain, HOST) for domain in DOMAINS}
    monkeypatch.setattr(audit_run, "probe_all", lambda address, server_name, domains: probes)
    monkeypatch.setattr(audit_run, "inspect", lambda access: HostInspection(
        evidence={HOST: fx.host()}, expected={HOST: fx.EXPECTED_FILES},
        stats={"ok": {HOST: 16}, "changed": {}}, status="successful"))
    return root


def plan_records(root: Path) -> list[dict]:
    result = run_cli("--inventory-root", str(root), "dns", "plan", "dnstest", "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["records"]


def audit(root: Path, knot: dnsfixtures.KnotServer) -> tuple[Any, dict[str, Any]]:
    result = run_cli("--inventory-root", str(root), "audit", "dnstest", "--nameserver", knot.address,
                     "--output", "out")
    return result, json.loads((root.parent / "out" / "report.json").read_text())


def dns_controls(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in data["controls"] if c["source"] == "dns"}


def test_planned_zone_passes_every_dns_control(root: Path, knot: dnsfixtures.KnotServer) -> None:
    knot.start(dnsfixtures.zone_files(plan_records(root)), signed=True)
    result, data = audit(root, knot)
    assert result.exit_code == 0, result.output
    assert f"  nameserver: {knot.address}; " in result.stdout
    controls = dns_controls(data)
    assert list(controls) == [spec.id for spec in cat.DNS_SPECS]
    assert {cid: c["status"] for cid, c in controls.items() if c["status"] != "pass"} == {}
    assert controls["DNS-DNSSEC"]["evidence"].splitlines() == [
        f"pass: {domain}. DNSKEY: present: signed; the resolver did not report it validated (no AD); "
        "observed 2 DNSKEY records" for domain in DOMAINS]
    # Both domains' records are in the control's evidence, and every record is kept in the DNS evidence.
    assert len(controls["DNS-MX"]["evidence"].splitlines()) == 2
    assert data["evidence"]["dns"]["nameserver"] == knot.address
    assert {r["id"] for r in data["evidence"]["dns"]["results"]} == set(controls)
    html = (root.parent / "out" / "report.html").read_text()
    assert html.index('id="source-dns"') < html.index('id="source-probe"') < html.index('id="source-host"') \
        < html.index('id="source-audit"') < html.index("<h2>Evidence</h2>")
    assert f"DNS: every planned record as seen by {knot.address}" in html


def test_a_broken_record_fails_its_dns_control_in_the_audit(root: Path, knot: dnsfixtures.KnotServer) -> None:
    records = [dict(r, rdata='"v=spf1 +all"') if r["purpose"] == "spf" and r["name"] == "beta.test." else r
               for r in plan_records(root)]
    knot.start(dnsfixtures.zone_files(records))
    result, data = audit(root, knot)
    assert result.exit_code == EXIT_CODE_AUDIT_FAILED
    controls = dns_controls(data)
    failing = {cid for cid, c in controls.items() if c["status"] in ("fail", "error")}
    # +all authorizes every address, the appliance's too, so DNS-SPF-AUTHORIZES still passes.
    assert failing == {"DNS-SPF-ALL"}
    assert controls["DNS-SPF-ALL"]["evidence"].splitlines()[1] == (
        "fail: beta.test. TXT: weaker: +all lets any host on the internet send as beta.test; end the record with "
        "-all; observed v=spf1 +all; expected v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all")
    assert "Error: 1 control(s) at or above severity high failed: DNS-SPF-ALL" in result.stderr
    # The command line shows the record that failed, not the one that passed.
    assert "fail: beta.test. TXT: weaker: +all" in result.stdout and "pass: alpha.test. TXT" not in result.stdout


def test_dns_that_does_not_answer_is_an_error_not_a_crash(root: Path, knot: dnsfixtures.KnotServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    knot.start(dnsfixtures.zone_files(plan_records(root)))
    knot.stop()
    monkeypatch.setattr(servers, "LOOKUP_LIFETIME", 0.3)
    result, data = audit(root, knot)
    assert result.exit_code == EXIT_CODE_AUDIT_FAILED
    controls = dns_controls(data)
    assert {c["status"] for c in controls.values()} == {"error"}
    assert controls["DNS-DNSSEC"]["evidence"] == (
        f"DNS could not be checked against {knot.address}: no lookup got an answer from {knot.address} "
        "(lookup failed: no answer within 0.3 s; lookup failed: not asked: 2 lookups in a row got no answer, "
        "the server looks down)")
    # The rest of the audit still ran (the site has no outbound: section, so its controls are not applicable).
    assert {c["status"] for c in data["controls"] if c["source"] != "dns"} <= {"pass", "warn", "not-applicable"}
