"""The HTML report opens in a real browser: headless Chromium renders it to a PNG kept as a test artifact
in build/test-artifacts/audit-report.png, for a person to look at."""

from __future__ import annotations

import datetime
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import auditfixtures as fx
from conftest import PROJECT_DIR
from mailappliance.audit import report
from mailappliance.audit.judge_dns import judge_dns
from mailappliance.audit.judge_host import SiteExpectations, judge_host
from mailappliance.audit.judge_probes import judge_probes
from mailappliance.audit.run import by_source

ARTIFACT = PROJECT_DIR / "build" / "test-artifacts" / "audit-report.png"
CHROMIUM = shutil.which("chromium")


def _report(output: Path) -> Path:
    probes = fx.probes()
    probes["ports"]["25"]["versions"]["TLSv1"]["accepted"] = True
    probes["mta_sts"][fx.DOMAIN]["content_type"] = "text/html"
    host = fx.host()
    host["postconf"][1] = "mynetworks = 0.0.0.0/0"
    dns = fx.dns()
    spf_all = next(r for r in dns["results"] if r["id"] == "DNS-SPF-ALL")
    spf_all.update(status="fail", state="weaker", observed="v=spf1 ip4:10.88.0.25 ~all",
                   expected="v=spf1 ip4:10.88.0.25 -all",
                   detail="~all only marks mail from other hosts as suspicious (softfail); end the record with -all")
    controls = by_source(judge_dns(dns) + judge_probes(probes, fx.HOSTNAME, fx.NOW, fx.policy())
                         + judge_host(host, fx.EXPECTED_FILES, SiteExpectations(6, 15)))
    data = report.report_data(
        site="demo", hostname=fx.HOSTNAME, address="10.88.0.25",
        generated_at=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        controls=controls,
        evidence=report.Evidence(dns=dns, probes=probes, host={fx.HOSTNAME: host}, run={"recap": {}}),
        fail_on="high",
        changes={"previous_report": "build/demo/audit/20261125T120000Z/report.json",
                 "previous_generated_at": "2026-11-25T12:00:00Z",
                 "changed": [{"id": "POSTFIX-RELAY", "title": "Postfix relays only for loopback and authenticated "
                              "users", "before": "pass", "after": "fail"}]})
    return report.write_reports(data, output).html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium, or "
                                             "scripts/install-host-deps); it renders the report screenshot")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    html = _report(tmp_path / "report")
    png = tmp_path / "report.png"
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={png}", "--window-size=1280,2000", html.resolve().as_uri()],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and png.is_file(), result.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 2000)
    # A blank page compresses to almost nothing; a rendered report does not.
    assert len(data) > 50_000
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(png, ARTIFACT)
