"""`mailappliance audit` against this appliance, the way an auditor's CI would run it: every control passes on
the site as deployed, an administrator's two classic mistakes (TLS 1.0 for old clients, relaying for a whole
network) fail exactly the controls that describe them, and no audit run changes the host.

DNS evidence comes from a real Knot DNS server on loopback serving, DNSSEC-signed, the zone `mailappliance dns
plan` writes for the fixture site; the plan reads the DKIM keys and the certificate converge published."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from conftest import INVENTORY_DIR, PROJECT_DIR
from mailprobe import HOSTNAME

sys.path.insert(0, str(PROJECT_DIR / "tests"))
from dnsfixtures import KnotServer, zone_files  # noqa: E402

FIXTURE = PROJECT_DIR / "molecule" / "default" / "site" / "site.yml"
ARTIFACTS = PROJECT_DIR / "build" / "test-artifacts" / "molecule-audit"
# The zones the fixture site's records fall into: its two domains and the reverse zone of 10.88.77.25.
ZONES = ("alpha.test.", "beta.test.", "77.88.10.in-addr.arpa.")
AUDIT_TIMEOUT = 600
# What the audit's own probes provoke on purpose: refused TLS 1.0/1.1 handshakes, a relay attempt and
# sessions that end without QUIT.
AUDIT_PROBE_LOG = r"SSL routines::(unsupported protocol|version too low)|TLS library problem"

# The misconfiguration: what an administrator might type to let an old scanner send over TLS 1.0 and to let a
# whole office network relay. Applied with postconf, so Postfix really runs with it.
MISCONFIGURATION = {
    "smtpd_tls_protocols": ">=TLSv1",
    "smtpd_tls_mandatory_protocols": ">=TLSv1",
    "smtpd_tls_ciphers": "medium",
    "tls_medium_cipherlist": "DEFAULT:@SECLEVEL=0",
    "mynetworks": "127.0.0.0/8 [::1]/128 10.0.0.0/8",
}
# Exactly what those settings break, seen from both sides (probe and host) plus the drift of main.cf. Only
# port 25 really speaks TLS 1.0: 465 and 587 use the mandatory settings, whose "high" cipher grade keeps
# OpenSSL's security level, under which TLS 1.0 and 1.1 cannot be negotiated.
EXPECTED_VERDICTS = {
    "TLS-25-PROTOCOLS": "fail",
    "POSTFIX-TLS-PROTOCOLS": "fail",
    "POSTFIX-TLS-CIPHERS": "warn",
    "POSTFIX-RELAY": "fail",
    "SMTP-OPEN-RELAY": "fail",
    "CONFIG-DRIFT": "fail",
}
# The fixture site has neither an outbound: nor an archive: section, so the controls of carriers, routes,
# channels, sending accounts and the archive have nothing to judge: they say so, and every other control passes.
NOT_APPLICABLE = dict.fromkeys(
    ("OUTBOUND-RELAY-TLS", "OUTBOUND-ROUTE-FALLBACK", "OUTBOUND-ACCOUNT-LIMITS", "OUTBOUND-CHANNEL-QUEUES",
     "ARCHIVE-COVERAGE", "ARCHIVE-INTEGRITY", "ARCHIVE-RETENTION", "ARCHIVE-HOLDS", "ARCHIVE-SPACE"),
    "not-applicable")


def cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    """The CLI on the fixture site's inventory, the one `make molecule` rendered before converge.

    The auditor here trusts the appliance's self-signed certificate, as one trusts a company's private CA;
    without that the certificate-chain controls (and the MTA-STS policy's) rightly only warn."""
    command = [sys.executable, "-m", "mailappliance", "--inventory-root", str(INVENTORY_DIR.parent),
               "--build-root", str(PROJECT_DIR / "build" / "molecule" / "cli"), *args]
    trusted = INVENTORY_DIR / "published" / HOSTNAME / "tls" / "cert.pem"
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=PROJECT_DIR,
                          env={**os.environ, "SSL_CERT_FILE": str(trusted)}, check=False)


@pytest.fixture(scope="module")
def nameserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    plan = cli("dns", "plan", str(FIXTURE), "--format", "json")
    assert plan.returncode == 0, f"dns plan failed:\n{plan.stdout}\n{plan.stderr}"
    records = json.loads(plan.stdout)["records"]
    pending = [f"{r['name']} {r['type']}: {r['pending']}" for r in records if r.get("pending")]
    assert not pending, "converge should have published everything the plan needs:\n" + "\n".join(pending)
    server = KnotServer(tmp_path_factory.mktemp("knot"))
    server.start(zone_files(records, ZONES), signed=True)
    yield server.address
    server.stop()


def audit(nameserver: str, name: str, log_allowances, *options: str) -> tuple[int, str, dict]:
    output = ARTIFACTS / name
    shutil.rmtree(output, ignore_errors=True)
    with log_allowances.expect(AUDIT_PROBE_LOG, f"the audit's probes ({name})"):
        run = cli("audit", str(FIXTURE), "--nameserver", nameserver, "--fail-on", "low", "--output", str(output),
                  *options, timeout=AUDIT_TIMEOUT)
    transcript = f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    assert (output / "report.json").is_file(), f"the audit wrote no report:\n{transcript}"
    return run.returncode, transcript, json.loads((output / "report.json").read_text())


def statuses(report: dict) -> dict[str, str]:
    return {control["id"]: control["status"] for control in report["controls"]}


def assert_changed_nothing(report: dict, transcript: str) -> None:
    # ansible-runner's stats: {"ok": {host: n}, "changed": {host: n}, ...}
    recap = report["evidence"]["run"]["recap"]
    assert recap and recap.get("ok"), f"no playbook recap in the report:\n{transcript}"
    assert not any(recap.get("changed", {}).values()), f"the audit changed the host: {recap}"
    assert statuses(report)["AUDIT-READ-ONLY"] == "pass", transcript


def test_audit_of_the_deployed_site_passes_every_control(nameserver, log_allowances):
    code, transcript, report = audit(nameserver, "deployed", log_allowances)
    not_passing = {cid: status for cid, status in statuses(report).items() if status != "pass"}
    assert not_passing == NOT_APPLICABLE, f"controls that do not pass on the deployed site: {not_passing}\n{transcript}"
    assert code == 0, transcript
    sources = {control["source"] for control in report["controls"]}
    assert {"dns", "probe", "host", "audit"} <= sources, f"evidence sources in the report: {sources}"
    assert_changed_nothing(report, transcript)


@pytest.fixture
def misconfigured(host) -> Iterator[None]:
    """Postfix running with MISCONFIGURATION; main.cf is put back byte for byte afterwards."""
    backup = "/root/main.cf.before-audit-test"
    assert host.run("cp -p /etc/postfix/main.cf %s", backup).rc == 0
    settings = [f"{name}={value}" for name, value in MISCONFIGURATION.items()]
    try:
        changed = host.run("postconf -e " + " ".join("%s" for _ in settings), *settings)
        assert changed.rc == 0, changed.stderr
        assert host.run("postfix reload").rc == 0
        yield
    finally:
        assert host.run("cp -p %s /etc/postfix/main.cf && postfix reload", backup).rc == 0


def test_audit_fails_exactly_the_controls_a_misconfiguration_breaks(nameserver, misconfigured, log_allowances):
    code, transcript, report = audit(nameserver, "misconfigured", log_allowances,
                                     "--previous", str(ARTIFACTS / "deployed" / "report.json"))
    not_passing = {cid: status for cid, status in statuses(report).items() if status != "pass"}
    expected = {**EXPECTED_VERDICTS, **NOT_APPLICABLE}
    assert not_passing == expected, f"expected {expected}, got {not_passing}\n{transcript}"
    assert code == 8, transcript
    assert_changed_nothing(report, transcript)
    drift = next(c for c in report["controls"] if c["id"] == "CONFIG-DRIFT")
    assert "/etc/postfix/main.cf" in drift["evidence"], drift
    changes = {change["id"] for change in (report.get("changes") or {}).get("changed", [])}
    assert changes == set(EXPECTED_VERDICTS), f"the comparison with the previous report lists {sorted(changes)}"
