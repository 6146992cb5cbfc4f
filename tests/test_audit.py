"""`mailappliance audit SITE` with recorded evidence: reports, digests, comparison with the previous report,
exit codes."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import auditfixtures as fx
from clirunner import run_cli
from conftest import CERT_PEM
from mailappliance import __version__, runner
from mailappliance.audit import run as audit_run
from mailappliance.audit.host import HostAccess, HostInspection, expected_checksums, inspect
from mailappliance.audit.judge_host import KEY_FILES
from mailappliance.exit_codes import EXIT_CODE_AUDIT_FAILED
from mailappliance.project import PROJECT_DIR
from mailappliance.site import CLAMAV_DATABASE_EXTENSIONS

HOST = "mail.alpha.test"

@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, site_dir: Path) -> dict[str, Any]:
    """Replace DNS, the live probes and the host run with recorded evidence; tests may edit it before the run."""
    evidence: dict[str, Any] = {"probes": fx.probes(), "host": fx.host(), "changed": {},
                                "dns": fx.dns("alpha.test", HOST), "nameservers": []}

    def probe_all(address: str, server_name: str, domains: list[str]) -> dict[str, Any]:
        assert domains == ["alpha.test", "beta.test"]
        return evidence["probes"]

    def check_dns(plan: Any, server: Any) -> dict[str, Any]:
        evidence["nameservers"].append(server)
        return evidence["dns"]

    def inspect(access: Any) -> HostInspection:
        return HostInspection(evidence={HOST: evidence["host"]}, expected={HOST: fx.EXPECTED_FILES},
                              stats={"ok": {HOST: 16}, "changed": evidence["changed"]}, status="successful")

    monkeypatch.setattr(audit_run, "probe_all", probe_all)
    monkeypatch.setattr(audit_run, "inspect", inspect)
    monkeypatch.setattr(audit_run, "check_dns", check_dns)
    # The recorded certificate is valid until 2027-12; the site's host name differs from the demo's.
    for port in evidence["probes"]["ports"].values():
        port["certificate"]["dns_names"] = [HOST]
    evidence["probes"]["mta_sts"] = {domain: fx.mta_sts(domain, HOST) for domain in ("alpha.test", "beta.test")}
    return evidence

def audit(*args: str) -> Any:
    return run_cli("audit", "site.yml", "--output", "out", *args)


def test_healthy_appliance_passes_and_writes_three_reports(full_site: Path, site_dir: Path, recorded: dict) -> None:
    result = audit()
    assert result.exit_code == 0, result.output
    out = site_dir / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"report.{ext}{digest}" for ext in ("json", "html", "junit.xml") for digest in ("", ".sha256"))
    data = json.loads((out / "report.json").read_text())
    assert set(data) == {"schema_version", "tool", "tool_version", "generated_at", "site", "hostname", "address",
                         "summary", "controls", "changes", "evidence"}
    assert data["schema_version"] == 2 and data["tool_version"] == __version__
    assert data["generated_at"].endswith("Z")
    assert data["summary"]["verdict"] == "pass"
    # Self-signed: the certificate chain of six ports and the MTA-STS policy host; unsigned zone: DNSSEC.
    assert data["summary"]["by_status"]["warn"] == 8
    assert set(data["controls"][0]) == {"id", "title", "severity", "status", "evidence", "remediation",
                                        "references", "source"}
    # Grouped by source: DNS, probes, host, the run itself.
    sources = [c["source"] for c in data["controls"]]
    assert sources == sorted(sources, key=["dns", "probe", "host", "audit"].index)
    assert [c["id"] for c in data["controls"][-2:]] == ["AUDIT-READ-ONLY", "AUDIT-HOST-INSPECTION"]
    assert data["summary"]["by_source"]["dns"] == {"pass": 24, "fail": 0, "warn": 1, "not-applicable": 0,
                                                   "error": 0}
    assert set(data["evidence"]) == {"dns", "probes", "host", "run"}
    assert data["evidence"]["dns"]["nameserver"] == "127.0.0.1:5353"
    # The site has neither an outbound: nor an archive: section, so their nine controls are not applicable.
    assert "audit of molecule: 88 controls: 71 pass, 8 warn, 9 not-applicable" in result.stdout
    assert {c["id"] for c in data["controls"] if c["status"] == "not-applicable"} == {
        "OUTBOUND-RELAY-TLS", "OUTBOUND-ROUTE-FALLBACK", "OUTBOUND-ACCOUNT-LIMITS", "OUTBOUND-CHANNEL-QUEUES",
        "ARCHIVE-COVERAGE", "ARCHIVE-INTEGRITY", "ARCHIVE-RETENTION", "ARCHIVE-HOLDS", "ARCHIVE-SPACE"}
    assert "  nameserver: 127.0.0.1:5353; 25 results" in result.stdout


def test_queue_ages_and_scan_times_reach_every_report(full_site: Path, site_dir: Path, recorded: dict) -> None:
    recorded["host"]["rspamd_stat"]["scan_times"] = [3.0] * 31
    result = audit()
    assert result.exit_code == 0, result.output  # both are medium, below the default threshold
    out = site_dir / "out"
    controls = {c["id"]: c for c in json.loads((out / "report.json").read_text())["controls"]}
    scan, queues = controls["RSPAMD-SCAN-TIME"], controls["POSTFIX-QUEUE-AGE"]
    assert (scan["status"], scan["severity"], scan["source"]) == ("warn", "medium", "host")
    assert scan["evidence"].startswith("p50 3.000 s, p90 3.000 s, p99 3.000 s over 31 recent scans")
    assert (queues["status"], queues["evidence"]) == (
        "pass", "maildrop: empty; incoming: empty; active: empty; deferred: 1 message, oldest 3.0 h; hold: empty")
    html = (out / "report.html").read_text()
    assert 'id="RSPAMD-SCAN-TIME"' in html and "deferred: 1 message, oldest 3.0 h" in html
    cases = {case.get("name", "").split(":")[0]: case
             for case in ET.parse(out / "report.junit.xml").getroot().iter("testcase")}
    assert cases["POSTFIX-QUEUE-AGE"].findtext("system-out", "").startswith("pass: maildrop: empty")
    assert cases["RSPAMD-SCAN-TIME"].findtext("system-out", "").startswith("warn: p50 3.000 s")


def test_digests_match_and_the_html_shows_the_json_digest(full_site: Path, site_dir: Path, recorded: dict) -> None:
    assert audit().exit_code == 0
    out = site_dir / "out"
    for name in ("report.json", "report.html", "report.junit.xml"):
        digest, _, filename = (out / f"{name}.sha256").read_text().strip().partition("  ")
        assert filename == name
        assert digest == hashlib.sha256((out / name).read_bytes()).hexdigest()
    json_digest = (out / "report.json.sha256").read_text().split()[0]
    html = (out / "report.html").read_text()
    assert json_digest in html
    # Summary first, then controls, then evidence; nothing loaded from elsewhere.
    assert html.index("<h2>Summary</h2>") < html.index("<h2>Controls</h2>") < html.index("<h2>Evidence</h2>")
    assert "<script" not in html and "<link" not in html and "src=" not in html


def test_junit_has_one_testcase_per_control(full_site: Path, site_dir: Path, recorded: dict) -> None:
    recorded["probes"]["smtp"]["relay"]["steps"][1]["code"] = 250
    recorded["probes"]["ports"]["4190"] = {"port": 4190, "kind": "sieve-starttls", "required": False,
                                           "reachable": False, "error": "refused"}
    recorded["probes"]["ports"]["465"] = {"port": 465, "kind": "smtp-tls", "required": True,
                                          "reachable": False, "error": "refused"}
    result = audit()
    assert result.exit_code == EXIT_CODE_AUDIT_FAILED
    suites = ET.parse(site_dir / "out/report.junit.xml").getroot()
    suite = suites.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    data = json.loads((site_dir / "out/report.json").read_text())
    assert len(cases) == len(data["controls"]) == int(suite.get("tests", "0"))
    failures = [c.get("name") for c in cases if c.find("failure") is not None]
    errors = [c.get("name") for c in cases if c.find("error") is not None]
    skipped = [c.get("name") for c in cases if c.find("skipped") is not None]
    assert [name.split(":")[0] for name in failures] == ["SMTP-OPEN-RELAY"]
    # Skipped: the optional port 4190's four controls, the four outbound and five archive ones (the site has
    # neither an outbound: nor an archive: section).
    assert len(errors) == 4 and len(skipped) == 13
    assert suite.get("failures") == "1" and suite.get("errors") == "4" and suite.get("skipped") == "13"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["tool_version"] == __version__ and props["generated_at"] == data["generated_at"]


def test_fail_on_sets_the_exit_code(full_site: Path, site_dir: Path, recorded: dict) -> None:
    recorded["probes"]["smtp"]["25"]["banner"] = "mail.alpha.test ESMTP Postfix"
    assert audit().exit_code == 0  # SMTP-BANNER is low; the default threshold is high
    result = audit("--fail-on", "low")
    assert result.exit_code == EXIT_CODE_AUDIT_FAILED
    assert "Error: 1 control(s) at or above severity low failed: SMTP-BANNER" in result.stderr
    assert "FAIL           low      SMTP-BANNER" in result.stdout


def test_a_run_that_changed_the_host_fails_at_any_threshold(full_site: Path, site_dir: Path, recorded: dict) -> None:
    recorded["changed"] = {HOST: 2}
    result = audit("--fail-on", "critical")
    assert result.exit_code == EXIT_CODE_AUDIT_FAILED
    assert "AUDIT-READ-ONLY" in result.stderr


def test_changes_since_the_previous_report(full_site: Path, site_dir: Path, recorded: dict) -> None:
    assert run_cli("audit", "site.yml").exit_code == 0
    first = sorted((site_dir / "build/molecule/audit").glob("*/report.json"))
    assert len(first) == 1
    # A second run in the same second would reuse the folder; move the first one back in time.
    older = first[0].parent.with_name("20000101T000000Z")
    first[0].parent.rename(older)
    recorded["host"]["postconf"][1] = "mynetworks = 0.0.0.0/0"
    result = run_cli("audit", "site.yml")
    assert result.exit_code == EXIT_CODE_AUDIT_FAILED
    latest = max((site_dir / "build/molecule/audit").glob("*/report.json"))
    data = json.loads(latest.read_text())
    assert data["changes"]["previous_report"].endswith("20000101T000000Z/report.json")
    assert data["changes"]["changed"] == [{"id": "POSTFIX-RELAY", "title": "Postfix relays only for loopback and "
                                           "authenticated users", "before": "pass", "after": "fail"}]
    assert "POSTFIX-RELAY: pass -> fail" in result.stdout
    html = latest.with_name("report.html").read_text()
    assert "Changes since the previous report" in html


def test_the_previous_reports_archive_anchor_goes_to_the_host(full_site: Path, site_dir: Path, recorded: dict,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert audit().exit_code == 0
    previous = json.loads((site_dir / "out/report.json").read_text())
    anchor = "5150:" + "5e" * 32
    control = next(c for c in previous["controls"] if c["id"] == "ARCHIVE-INTEGRITY")
    control["evidence"] = f"pass: last checkpoint: log entry 5150 at ..., anchor {anchor} (a later ...)"
    (site_dir / "previous.json").write_text(json.dumps(previous))
    seen: list[tuple[str, ...]] = []
    recorded_inspect = audit_run.inspect

    def inspect(access: HostAccess) -> HostInspection:
        seen.append(access.archive_anchors)
        return recorded_inspect(access)

    monkeypatch.setattr(audit_run, "inspect", inspect)
    result = run_cli("audit", "site.yml", "--output", "second", "--previous", "previous.json")
    assert result.exit_code == 0, result.output
    assert seen == [(anchor,)]
    assert f"the archive's log held to the previous report's anchor {anchor}" in result.stdout


def test_previous_must_be_a_report(full_site: Path, site_dir: Path, recorded: dict) -> None:
    (site_dir / "not-a-report.json").write_text("{}")
    result = audit("--previous", "not-a-report.json")
    assert result.exit_code == 1
    assert "not an audit report" in result.stderr


def test_evidence_never_holds_secret_file_content(full_site: Path, site_dir: Path, recorded: dict) -> None:
    assert audit().exit_code == 0
    text = (site_dir / "out/report.json").read_text() + (site_dir / "out/report.html").read_text()
    assert "{SHA512-CRYPT}$6$" not in text
    vault_pass = (site_dir / "inventories/molecule/.vault-pass").read_text().strip()
    assert vault_pass not in text


def test_expected_checksums_come_from_the_preview(tmp_path: Path) -> None:
    (tmp_path / HOST / "etc/postfix").mkdir(parents=True)
    (tmp_path / HOST / "etc/postfix/main.cf").write_text("x\n")
    assert expected_checksums(tmp_path) == {HOST: {"/etc/postfix/main.cf": hashlib.sha256(b"x\n").hexdigest()}}


def test_inspection_gives_the_playbook_what_it_searches_for(tmp_path: Path) -> None:
    preview = tmp_path / "preview"
    calls: list[tuple[str, dict[str, Any]]] = []

    def render_preview() -> list[Path]:
        (preview / HOST / "etc/postfix").mkdir(parents=True)
        (preview / HOST / "etc/postfix/main.cf").write_text("x\n")
        return [preview / HOST / "etc/postfix/main.cf"]

    def run_playbook(name: str, extravars: dict[str, Any]) -> runner.PlaybookRun:
        calls.append((name, extravars))
        Path(extravars["mailappliance__audit_evidence_dir"], f"{HOST}.json").write_text('{"clock": "1"}')
        return runner.PlaybookRun("successful", 0, {"ok": {HOST: 16}, "changed": {}})

    work = tmp_path / "build" / "molecule"
    inspection = inspect(HostAccess(work_dir=work, preview_dir=preview, render_preview=render_preview,
                                    run_playbook=run_playbook))
    [(name, extravars)] = calls
    assert name == "audit.yml"
    assert extravars["mailappliance__audit_files"] == {HOST: ["/etc/postfix/main.cf"]}
    # The site model's list is the only one: the playbook finds every database a site may ship.
    assert extravars["mailappliance__audit_clamav_database_extensions"] == list(CLAMAV_DATABASE_EXTENSIONS)
    # Likewise the key files: judge_host's table says which files and what owner and mode they must have.
    assert extravars["mailappliance__audit_key_files"] == sorted(KEY_FILES)
    assert Path(extravars["mailappliance__audit_evidence_dir"]).parent == work.resolve()
    assert (inspection.evidence, inspection.error) == ({HOST: {"clock": "1"}}, "")
    assert list(work.iterdir()) == []


def test_audit_renders_the_preview_then_inspects_the_site_host(full_site: Path, site_dir: Path, recorded: dict,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Path, Path, Path, dict[str, Any]]] = []

    def run_playbook(playbook: Path, inventory: Path, vault_password_file: Path, work_dir: Path,
                     **options: Any) -> runner.PlaybookRun:
        extravars = options["extravars"]
        calls.append((playbook, inventory, work_dir, extravars))
        if playbook.name == "render.yml":
            main_cf = Path(extravars["mailappliance__preview_dir"], HOST, "etc/postfix/main.cf")
            main_cf.parent.mkdir(parents=True)
            main_cf.write_text("x\n")
        else:
            evidence = Path(extravars["mailappliance__audit_evidence_dir"], f"{HOST}.json")
            evidence.write_text(json.dumps(recorded["host"]))
        return runner.PlaybookRun("successful", 0, {"ok": {HOST: 16}, "changed": {}})

    monkeypatch.setattr(audit_run, "inspect", inspect)
    monkeypatch.setattr(runner, "run_playbook", run_playbook)
    result = audit("--fail-on", "critical")
    assert result.exit_code == 0, result.output
    assert [(playbook, inventory, work_dir) for playbook, inventory, work_dir, _ in calls] == [
        (PROJECT_DIR / "playbooks" / name, Path("inventories/molecule/hosts.yml"), Path("build/molecule"))
        for name in ("render.yml", "audit.yml")
    ]
    assert calls[0][3] == {"mailappliance__preview_dir": str(site_dir / "build/molecule/preview")}
    assert calls[1][3]["mailappliance__audit_files"] == {HOST: ["/etc/postfix/main.cf"]}
    kept = json.loads((site_dir / "out/report.json").read_text())["evidence"]["host"][HOST]
    assert kept["expected_files"] == {"/etc/postfix/main.cf": hashlib.sha256(b"x\n").hexdigest()}


def test_nameserver_is_parsed_like_dns_check_and_passed_on(full_site: Path, site_dir: Path, recorded: dict) -> None:
    assert audit("--nameserver", "[::1]:5353").exit_code == 0
    assert [str(server) for server in recorded["nameservers"]] == ["[::1]:5353"]
    result = audit("--nameserver", "ns.example:53")
    assert result.exit_code == 1
    assert "Error: --nameserver: 'ns.example:53' is not an IP address" in result.stderr


def test_a_dns_plan_that_cannot_be_built_errs_the_dns_controls_only(full_site: Path, site_dir: Path,
                                                                     recorded: dict) -> None:
    # PEM armour around garbage where deploy leaves the appliance's certificate: the site file validates, the
    # deployed certificate's key cannot be read for TLSA.
    published = site_dir / "inventories" / "molecule" / "published" / HOST / "tls" / "cert.pem"
    published.parent.mkdir(parents=True)
    published.write_text(CERT_PEM)
    result = audit("--fail-on", "critical")
    assert result.exit_code == 0, result.output
    data = json.loads((site_dir / "out/report.json").read_text())
    dns = [c for c in data["controls"] if c["source"] == "dns"]
    assert len(dns) == 25 and {c["status"] for c in dns} == {"error"}
    assert "the DNS plan could not be built: " in dns[0]["evidence"] and "not a PEM certificate" in dns[0]["evidence"]
    assert {c["status"] for c in data["controls"] if c["source"] != "dns"} <= {"pass", "warn", "not-applicable"}
    assert recorded["nameservers"] == []
