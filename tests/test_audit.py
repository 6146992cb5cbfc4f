"""`mailappliance audit SITE` with recorded evidence: reports, digests, comparison with the previous report, exit codes."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import auditfixtures as fx
from clirunner import run_cli
from mailappliance import __version__
from mailappliance.audit import run as audit_run
from mailappliance.audit.host import HostInspection, expected_checksums
from mailappliance.exit_codes import EXIT_CODE_AUDIT_FAILED

HOST = "mail.alpha.test"

@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the live probes and the host run with recorded evidence; tests may edit it before the run."""
    evidence: dict[str, Any] = {"probes": fx.probes(), "host": fx.host(), "changed": {}}

    def probe_all(address: str, server_name: str) -> dict[str, Any]:
        return evidence["probes"]

    def inspect(app: Any, site: Any) -> HostInspection:
        return HostInspection(evidence={HOST: evidence["host"]}, expected={HOST: fx.EXPECTED_FILES},
                              stats={"ok": {HOST: 16}, "changed": evidence["changed"]}, status="successful")

    monkeypatch.setattr(audit_run, "probe_all", probe_all)
    monkeypatch.setattr(audit_run, "inspect", inspect)
    # The recorded certificate is valid until 2027-12; the site's host name differs from the demo's.
    for port in evidence["probes"]["ports"].values():
        port["certificate"]["dns_names"] = [HOST]
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
    assert data["schema_version"] == 1 and data["tool_version"] == __version__
    assert data["generated_at"].endswith("Z")
    assert data["summary"]["verdict"] == "pass"
    assert data["summary"]["by_status"]["warn"] == 6
    assert set(data["controls"][0]) == {"id", "title", "severity", "status", "evidence", "remediation",
                                        "references", "source"}
    assert [c["id"] for c in data["controls"][:2]] == ["AUDIT-READ-ONLY", "AUDIT-HOST-INSPECTION"]
    assert "audit of molecule: 49 controls: 43 pass, 6 warn" in result.stdout


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
    assert len(errors) == 4 and len(skipped) == 4
    assert suite.get("failures") == "1" and suite.get("errors") == "4" and suite.get("skipped") == "4"
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
