"""Judging recorded evidence: a healthy appliance passes, and each control fails for its own misconfiguration."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest

import auditfixtures as fx
from mailappliance.audit.host import HostInspection
from mailappliance.audit.judge_dns import judge_dns, worst
from mailappliance.audit.judge_host import SiteExpectations, judge_host
from mailappliance.audit.judge_probes import banner_leak, judge_mta_sts, judge_probes, name_matches
from mailappliance.controls import catalogue as cat
from mailappliance.controls.model import Control, failing_at

SITE = SiteExpectations(spam_add_header=6, spam_reject=15)


def statuses(controls: list[Control]) -> dict[str, str]:
    return {control.id: control.status for control in controls}


def probe_controls(probes: dict[str, Any], now: datetime.datetime = fx.NOW) -> dict[str, str]:
    return statuses(judge_probes(probes, fx.HOSTNAME, now, fx.policy()))


def host_controls(host: dict[str, Any], expected: dict[str, str] | None = None) -> dict[str, str]:
    return statuses(judge_host(host, fx.EXPECTED_FILES if expected is None else expected, SITE))


def test_healthy_probes_pass_with_self_signed_warnings() -> None:
    seen = probe_controls(fx.probes())
    warns = {cid for cid, status in seen.items() if status == "warn"}
    assert warns == {f"TLS-{port}-CERT-CHAIN" for port in (25, 587, 465, 993, 995, 4190)} | {"MTASTS-POLICY"}
    assert {status for cid, status in seen.items() if cid not in warns} == {"pass"}
    # Four TLS controls per mail port, the protocol versions of the web port, SMTP policy, the MTA-STS policy.
    assert len(seen) == 6 * 4 + 1 + 7 + 1
    assert "TLS-443-CERT-NAME" not in seen


def test_healthy_host_passes() -> None:
    seen = host_controls(fx.host())
    assert set(seen.values()) == {"pass"}, seen
    assert len(seen) == 19


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return apply


PROBE_BREAKS = {
    "TLS-25-PROTOCOLS": _set(["ports", "25", "versions", "TLSv1", "accepted"], True),
    "TLS-993-PROTOCOLS": _set(["ports", "993", "versions", "TLSv1.1", "accepted"], True),
    "TLS-443-PROTOCOLS": _set(["ports", "443", "versions", "TLSv1", "accepted"], True),
    "MTASTS-POLICY": _set(["mta_sts", fx.DOMAIN, "status"], 404),
    "TLS-465-CERT-CHAIN": _set(["ports", "465", "trust"], {"verified": False, "verify_code": 20,
                                                           "verify_message": "unable to get local issuer certificate"}),
    "TLS-465-CERT-EXPIRY": _set(["ports", "465", "certificate", "not_after"], "2026-11-30T00:00:00+00:00"),
    "TLS-995-CERT-NAME": _set(["ports", "995", "certificate", "dns_names"], ["other.example"]),
    "SMTP-25-STARTTLS": _set(["smtp", "25", "before_tls"], ["pipelining", "size"]),
    "SMTP-587-STARTTLS": _set(["smtp", "587", "before_tls"], ["pipelining", "size"]),
    "SMTP-25-NO-AUTH": _set(["smtp", "25", "after_tls"], ["auth", "pipelining"]),
    "SMTP-587-NO-AUTH-BEFORE-TLS": _set(["smtp", "587", "before_tls"], ["auth", "starttls"]),
    "SMTP-OPEN-RELAY": _set(["smtp", "relay", "steps", 1, "code"], 250),
    "SMTP-BANNER": _set(["smtp", "25", "banner"], "mail.demo.test ESMTP Postfix (Debian/GNU)"),
    "IMAP-GREETING": _set(["ports", "993", "greeting"], "* OK Dovecot (Debian) ready."),
}


@pytest.mark.parametrize("control", sorted(PROBE_BREAKS))
def test_each_probe_control_fails_for_its_misconfiguration(control: str) -> None:
    probes = fx.probes()
    PROBE_BREAKS[control](probes)
    seen = probe_controls(probes)
    assert seen[control] == "fail"
    healthy = probe_controls(fx.probes())
    assert {cid for cid in seen if seen[cid] != healthy[cid]} == {control}


def test_expiry_warns_within_30_days_and_fails_when_expired() -> None:
    probes = fx.probes()
    probes["ports"]["25"]["certificate"]["not_after"] = "2026-12-15T00:00:00+00:00"
    assert probe_controls(probes)["TLS-25-CERT-EXPIRY"] == "warn"
    probes["ports"]["25"]["certificate"]["not_after"] = "2026-01-01T00:00:00+00:00"
    control = next(c for c in judge_probes(probes, fx.HOSTNAME, fx.NOW, fx.policy()) if c.id == "TLS-25-CERT-EXPIRY")
    assert control.status == "fail" and "expired on 2026-01-01" in control.evidence


def test_closed_ports_are_errors_unless_optional() -> None:
    probes = fx.probes()
    probes["ports"]["465"] = {"port": 465, "kind": "smtp-tls", "required": True, "reachable": False,
                              "error": "[Errno 111] Connection refused"}
    probes["ports"]["4190"] = {"port": 4190, "kind": "sieve-starttls", "required": False, "reachable": False,
                               "error": "[Errno 111] Connection refused"}
    seen = probe_controls(probes)
    assert {seen[f"TLS-465-{x}"] for x in ("PROTOCOLS", "CERT-CHAIN", "CERT-EXPIRY", "CERT-NAME")} == {"error"}
    assert {seen[f"TLS-4190-{x}"] for x in ("PROTOCOLS", "CERT-CHAIN", "CERT-EXPIRY", "CERT-NAME")} == \
        {"not-applicable"}


def test_relay_deferred_is_a_warning_and_the_dialogue_is_evidence() -> None:
    probes = fx.probes()
    probes["smtp"]["relay"]["steps"][1].update(code=451, reply="4.3.0 try later")
    control = next(c for c in judge_probes(probes, fx.HOSTNAME, fx.NOW, fx.policy()) if c.id == "SMTP-OPEN-RELAY")
    assert control.status == "warn"
    assert "RCPT TO:<audit-probe@relay-test-recipient.example.net> -> 451 4.3.0 try later" in control.evidence


def test_banner_leaks_ignore_the_host_name() -> None:
    assert banner_leak("mail2.demo.test ESMTP", "mail2.demo.test") == []
    assert banner_leak("mx ESMTP Postfix 3.7.11", "mx") == ["3.7.11", "Postfix"]


def test_certificate_names_follow_rfc_6125() -> None:
    assert name_matches("*.demo.test", "mail.demo.test")
    assert not name_matches("*.demo.test", "a.mail.demo.test")
    assert name_matches("MAIL.demo.test", "mail.demo.test")


HOST_BREAKS = {
    "POSTFIX-RELAY": _set(["postconf", 1], "mynetworks = 0.0.0.0/0"),
    "POSTFIX-TLS-PROTOCOLS": _set(["postconf", 2], "smtpd_tls_protocols = >=TLSv1"),
    "POSTFIX-TLS-CIPHERS": _set(["postconf", 5], "smtpd_tls_mandatory_ciphers = low"),
    "POSTFIX-AUTH": _set(["postconf", 8], "smtpd_sasl_auth_enable = yes"),
    "POSTFIX-MILTER-TEMPFAIL": _set(["postconf", 7], "milter_default_action = accept"),
    "POSTFIX-SMUGGLING": _set(["postconf", 10], "smtpd_forbid_bare_newline = no"),
    "POSTFIX-QUEUE-AGE": _set(["postfix_queues", "summary"], [f"deferred 3 {int(fx.CLOCK) - 5 * 86400}"]),
    "DOVECOT-TLS": _set(["doveconf", 1], "ssl_min_protocol = TLSv1"),
    "DOVECOT-PLAINTEXT": _set(["doveconf", 2], "disable_plaintext_auth = no"),
    "DOVECOT-PASSWORD-SCHEME": _set(["password_schemes"], ["SHA512-CRYPT", "PLAIN"]),
    "RSPAMD-ACTIONS": _set(["rspamd_actions"], '{"reject": 150, "add_header": 6}'),
    "RSPAMD-DKIM-BITS": _set(["dkim_keys", 0, 1], "Public-Key: (1024 bit)"),
    # Every scan waits on DNS lookups that time out.
    "RSPAMD-SCAN-TIME": _set(["rspamd_stat", "scan_times"], [12.5] * 31),
    "CLAMAV-RUNNING": _set(["services", "clamav-daemon.service", "state"], "stopped"),
    "CLAMAV-SIGNATURES": _set(["clamav_databases", 0, "mtime"], fx.CLOCK - 30 * 86400),
    "HOST-SERVICES": _set(["services", "dovecot.service", "status"], "disabled"),
    "HOST-SECURITY-UPDATES": _set(["upgrades"], [
        "Inst libssl3 [3.0.20-1~deb12u2] (3.0.22-1~deb12u2 Debian-Security:12/oldstable-security [amd64])"]),
    "HOST-KEY-PERMISSIONS": _set(["key_files", 0], "/etc/mailappliance/tls/key.pem\troot\troot\t644"),
    "CONFIG-DRIFT": _set(["files", 0], "0000  /etc/postfix/main.cf"),
}


@pytest.mark.parametrize("chain_files, stat_line", [
    # The key Postfix loads, wherever it is, is judged; the path is not assumed.
    ("/srv/tls/mail.key, /srv/tls/mail.crt", "/srv/tls/mail.key\troot\troot\t640"),
    # Postfix loads no key at all: nothing to judge is a failure, not a pass.
    ("", "/etc/mailappliance/tls/key.pem\troot\troot\t600"),
])
def test_the_tls_key_judged_is_the_one_postfix_loads(chain_files: str, stat_line: str) -> None:
    host = fx.host()
    host["postconf"][-1] = f"smtpd_tls_chain_files = {chain_files}"
    host["key_files"][0] = stat_line
    assert host_controls(host)["HOST-KEY-PERMISSIONS"] == "fail"
    host["key_files"][0] = stat_line.replace("\t640", "\t600")
    assert host_controls(host)["HOST-KEY-PERMISSIONS"] == ("pass" if chain_files else "fail")


@pytest.mark.parametrize("control", sorted(HOST_BREAKS))
def test_each_host_control_fails_for_its_misconfiguration(control: str) -> None:
    host = fx.host()
    HOST_BREAKS[control](host)
    seen = host_controls(host)
    assert seen[control] == "fail"
    # A stopped clamd is also a service down: the two controls are meant to overlap there.
    expected = {control, "HOST-SERVICES"} if control == "CLAMAV-RUNNING" else {control}
    assert {cid for cid, status in seen.items() if status != "pass"} == expected


def test_every_catalogued_control_has_a_failing_test() -> None:
    specs = [value for value in vars(cat).values() if isinstance(value, cat.Spec)]
    broken = set(PROBE_BREAKS) | set(HOST_BREAKS) | {"AUDIT-READ-ONLY", "AUDIT-HOST-INSPECTION"}
    generic = {cid.replace("25", "{port}").replace("993", "{port}").replace("465", "{port}").replace("995", "{port}")
               .replace("443", "{port}") for cid in broken}
    # DNS controls are broken zone by zone against a real name server in test_dns_live.py
    # (test_every_dns_control_has_a_broken_variant), and folded here in test_dns_controls_*.
    missing = [spec.id for spec in specs if spec.id not in broken and spec.id not in generic and spec.source != "dns"]
    assert missing == []


def test_drift_reports_missing_files_and_never_content() -> None:
    host = fx.host()
    host["files"] = host["files"][:1]
    control = next(c for c in judge_host(host, fx.EXPECTED_FILES, SITE) if c.id == "CONFIG-DRIFT")
    assert control.status == "fail" and "missing: /etc/dovecot/users" in control.evidence


def test_dkim_key_owner_is_checked() -> None:
    host = fx.host()
    host["dkim_keys"][0][0]["mode"] = "0644"
    assert host_controls(host)["HOST-KEY-PERMISSIONS"] == "fail"


def test_security_updates_warn_without_a_security_source() -> None:
    host = fx.host()
    host["apt_lists"][0]["path"] = "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease"
    assert host_controls(host)["HOST-SECURITY-UPDATES"] == "warn"


def host_control(host: dict[str, Any], control_id: str) -> Control:
    return next(c for c in judge_host(host, fx.EXPECTED_FILES, SITE) if c.id == control_id)


MINUTE, HOUR, DAY = 60, 3600, 86400


@pytest.mark.parametrize("queue, age, status", [
    ("active", 30 * MINUTE, "pass"), ("active", 30 * MINUTE + 1, "warn"), ("active", 2 * HOUR, "warn"),
    ("active", 2 * HOUR + 1, "fail"), ("incoming", 2 * HOUR + 1, "fail"), ("maildrop", 30 * MINUTE + 1, "warn"),
    ("deferred", DAY, "pass"), ("deferred", DAY + 1, "warn"), ("deferred", 4 * DAY, "warn"),
    ("deferred", 4 * DAY + 1, "fail"),
    # Held mail waits for an administrator; it never fails the control, however old.
    ("hold", DAY, "pass"), ("hold", DAY + 1, "warn"), ("hold", 30 * DAY, "warn"),
])
def test_queue_age_thresholds(queue: str, age: int, status: str) -> None:
    host = fx.host()
    host["postfix_queues"]["summary"] = [f"{queue} 2 {int(fx.CLOCK) - age}"]
    control = host_control(host, "POSTFIX-QUEUE-AGE")
    assert control.status == status
    assert f"{queue}: 2 messages, oldest " in control.evidence


def test_queue_age_reports_every_queue_and_its_worst() -> None:
    host = fx.host()
    host["postfix_queues"]["summary"] = [f"active 1 {int(fx.CLOCK) - 45 * MINUTE}",
                                         f"deferred 12 {int(fx.CLOCK) - 5 * DAY}", f"hold 1 {int(fx.CLOCK) - 30}"]
    control = host_control(host, "POSTFIX-QUEUE-AGE")
    assert control.status == "fail"
    assert control.evidence == ("maildrop: empty; incoming: empty; active: 1 message, oldest 45 min (warn); "
                                "deferred: 12 messages, oldest 5.0 days (fail); hold: 1 message, oldest 30 s")
    host["postfix_queues"]["summary"] = []
    control = host_control(host, "POSTFIX-QUEUE-AGE")
    assert (control.status, control.evidence) == (
        "pass", "maildrop: empty; incoming: empty; active: empty; deferred: empty; hold: empty")


def test_queue_age_is_an_error_when_postqueue_fails() -> None:
    host = fx.host()
    host["postfix_queues"] = {"rc": 69, "summary": [],
                              "error": "postqueue: fatal: Queue report unavailable - mail system is down"}
    control = host_control(host, "POSTFIX-QUEUE-AGE")
    assert control.status == "error"
    assert control.evidence == ("postqueue -j failed (exit 69): postqueue: fatal: Queue report unavailable - "
                                "mail system is down")


def _scans(*seconds: float) -> list[float | None]:
    """Rspamd's ring of the last 31 scan times, unfilled slots null."""
    return [*seconds, *[None] * (31 - len(seconds))]


@pytest.mark.parametrize("slow, seconds, status", [
    # The 90th percentile of ten scans is the ninth slowest: one slow scan in ten is tolerated, two are not.
    (1, 60.0, "pass"), (2, 2.0, "pass"), (2, 2.001, "warn"), (2, 10.0, "warn"), (2, 10.001, "fail"),
])
def test_scan_time_thresholds_judge_the_90th_percentile(slow: int, seconds: float, status: str) -> None:
    host = fx.host()
    host["rspamd_stat"]["scan_times"] = _scans(*[0.05] * (10 - slow), *[seconds] * slow)
    assert host_control(host, "RSPAMD-SCAN-TIME").status == status


def test_scan_time_evidence_names_the_percentiles() -> None:
    control = host_control(fx.host(), "RSPAMD-SCAN-TIME")
    assert control.evidence == ("p50 0.006 s, p90 0.068 s, p99 0.068 s over 7 recent scans (Rspamd up 23 min, 7 "
                                "messages scanned in all)")
    host = fx.host()
    host["rspamd_stat"].update(scan_times=[i / 10 for i in range(1, 32)], scanned=5000, uptime=3 * DAY)
    control = host_control(host, "RSPAMD-SCAN-TIME")
    assert control.status == "warn"
    assert control.evidence == ("p50 1.600 s, p90 2.800 s, p99 3.100 s over 31 recent scans (Rspamd up 3.0 days, "
                                "5000 messages scanned in all)")


def test_scan_time_passes_before_the_first_scan() -> None:
    # A restarted Rspamd has an empty ring (its message count survives): nothing was slow since it started.
    host = fx.host()
    host["rspamd_stat"].update(scan_times=_scans(), scanned=11, uptime=40)
    control = host_control(host, "RSPAMD-SCAN-TIME")
    assert (control.status, control.evidence) == ("pass", "no scan since Rspamd started (Rspamd up 40 s, 11 messages "
                                                          "scanned in all)")


@pytest.mark.parametrize("stat, reason", [
    ({"status": 403, "msg": "Status code was 403 and not [200]: HTTP Error 403: Forbidden"}, "(HTTP 403)"),
    ({"status": -1, "msg": "Status code was -1 and not [200]: Request failed: <urlopen error [Errno 111] "
                          "Connection refused>"}, "Connection refused"),
    ({}, "(HTTP ?)"),
])
def test_scan_time_is_an_error_when_the_controller_does_not_answer(stat: dict[str, Any], reason: str) -> None:
    host = fx.host()
    host["rspamd_stat"] = stat
    control = host_control(host, "RSPAMD-SCAN-TIME")
    assert control.status == "error" and control.evidence.startswith("Rspamd's controller did not answer /stat")
    assert reason in control.evidence


def test_a_run_that_changed_something_is_an_error() -> None:
    from mailappliance.audit.run import judge_inspection
    from mailappliance.site import Spam

    class _Site:
        spam = Spam()

    changed = HostInspection(evidence={"h": fx.host()}, expected={"h": fx.EXPECTED_FILES},
                             stats={"changed": {"h": 1}, "ok": {"h": 16}})
    controls, _ = judge_inspection(changed, _Site())  # type: ignore[arg-type]
    assert statuses(controls)["AUDIT-READ-ONLY"] == "error"
    assert [c.id for c in failing_at(controls, "critical")] == ["AUDIT-READ-ONLY"]
    unreachable = HostInspection(stats=None, error="cannot reach h")
    controls, _ = judge_inspection(unreachable, _Site())  # type: ignore[arg-type]
    assert statuses(controls) == {"AUDIT-READ-ONLY": "error", "AUDIT-HOST-INSPECTION": "error"}


def test_fail_on_threshold() -> None:
    probes = fx.probes()
    probes["smtp"]["25"]["banner"] = "mx ESMTP Postfix"
    controls = judge_probes(probes, fx.HOSTNAME, fx.NOW, fx.policy())
    assert [c.id for c in failing_at(controls, "low")] == ["SMTP-BANNER"]
    assert failing_at(controls, "medium") == []


MTA_STS_BREAKS = {
    "unreachable": ({"reachable": False, "error": "[Errno 111] Connection refused"},
                    "unreachable: [Errno 111] Connection refused"),
    "not-found": ({"status": 404, "reason": "Not Found"}, "HTTP 404 Not Found"),
    "redirect": ({"status": 301, "reason": "Moved Permanently", "location": "https://www.demo.test/"},
                 "HTTP 301 Moved Permanently (a redirect to https://www.demo.test/, which senders do not follow)"),
    "content-type": ({"content_type": "text/html; charset=utf-8"},
                     "Content-Type text/html; charset=utf-8, not text/plain"),
    "body": ({"body": fx.policy().replace("enforce", "testing"), "body_sha256": "0" * 64},
             "body differs from the plan's policy: line 2 is 'mode: testing' where the plan has 'mode: enforce'"),
    "crlf": ({"body": fx.policy().replace("\n", "\r\n"), "body_sha256": "0" * 64},
             "body differs from the plan's policy: CRLF line endings where the plan has LF"),
    "line-missing": ({"body": fx.policy().rsplit("max_age", 1)[0], "body_sha256": "0" * 64},
                     "body differs from the plan's policy: line 4 'max_age: 604800' of the plan is missing"),
    "certificate-name": ({"certificate": {"dns_names": [fx.HOSTNAME], "subject": "CN=" + fx.HOSTNAME}},
                         f"the certificate does not name mta-sts.{fx.DOMAIN} (subjectAltName: {fx.HOSTNAME})"),
}


@pytest.mark.parametrize("case", sorted(MTA_STS_BREAKS))
def test_mta_sts_policy_fails_and_says_why(case: str) -> None:
    change, reason = MTA_STS_BREAKS[case]
    fetched = {fx.DOMAIN: {**fx.mta_sts(), **change}, "other.test": fx.mta_sts("other.test")}
    control = judge_mta_sts(fetched, fx.policy())
    assert control.status == "fail" and control.severity == "high"
    assert control.references[0].startswith("RFC 8461 section 3.3")
    first, second = control.evidence.splitlines()
    assert first.startswith(f"fail: https://mta-sts.{fx.DOMAIN}/.well-known/mta-sts.txt at 10.88.0.25:443: ")
    assert reason in first
    # Every domain has its own line; the healthy one only warns about its self-signed certificate.
    assert second.startswith("warn: https://mta-sts.other.test/")


def test_mta_sts_policy_passes_with_a_trusted_certificate_and_warns_without() -> None:
    trusted = {**fx.mta_sts(), "trust": {"verified": True, "verify_code": 0, "verify_message": "ok"}}
    control = judge_mta_sts({fx.DOMAIN: trusted}, fx.policy())
    assert control.status == "pass"
    assert control.evidence == (f"pass: https://mta-sts.{fx.DOMAIN}/.well-known/mta-sts.txt at 10.88.0.25:443: "
                                f"serves the planned policy (HTTP 200, text/plain, 64 bytes, TLSv1.3, "
                                f"certificate names mta-sts.{fx.DOMAIN})")
    control = judge_mta_sts({fx.DOMAIN: fx.mta_sts()}, fx.policy())
    assert control.status == "warn" and "not publicly trusted (self-signed certificate)" in control.evidence


def test_dns_controls_of_a_healthy_zone_pass_and_dnssec_only_warns() -> None:
    controls = judge_dns(fx.dns())
    assert [c.id for c in controls] == [spec.id for spec in cat.DNS_SPECS]
    assert {c.id for c in controls if c.status != "pass"} == {"DNS-DNSSEC"}
    dnssec = next(c for c in controls if c.id == "DNS-DNSSEC")
    assert dnssec.status == "warn" and dnssec.severity == "info" and failing_at(controls, "info") == []
    assert {c.source for c in controls} == {"dns"}


def test_dns_controls_fold_records_into_their_worst_status() -> None:
    evidence = fx.dns()
    mx = next(r for r in evidence["results"] if r["id"] == "DNS-MX")
    evidence["results"].append({**mx, "group": "beta.test", "name": "beta.test.", "type": "MX", "status": "fail",
                                "state": "missing", "observed": None, "expected": "10 mail.demo.test.",
                                "detail": "no MX record"})
    evidence["results"].append({**mx, "group": "gamma.test", "name": "gamma.test.", "status": "warn",
                                "detail": "present, not compared"})
    controls = {c.id: c for c in judge_dns(evidence)}
    assert controls["DNS-MX"].status == "fail"
    assert controls["DNS-MX"].evidence.splitlines() == [
        "pass: demo.test. TXT: present: as planned; observed v=spf1 ip4:10.88.0.25 -all",
        "fail: beta.test. MX: missing: no MX record; expected 10 mail.demo.test.",
        "warn: gamma.test. TXT: present: present, not compared; observed v=spf1 ip4:10.88.0.25 -all",
    ]
    assert {cid for cid, c in controls.items() if c.status not in ("pass", "warn")} == {"DNS-MX"}
    assert worst(["not-applicable", "pass", "warn"]) == "warn"
    assert worst(["fail", "error", "pass"]) == "error"
    assert worst(["not-applicable", "pass"]) == "pass"


def test_dns_controls_without_records_are_not_applicable_and_long_values_are_cut() -> None:
    evidence = fx.dns()
    evidence["results"] = [r for r in evidence["results"] if r["id"] != "DNS-DMARC-RUA-AUTH"]
    dkim = next(r for r in evidence["results"] if r["id"] == "DNS-DKIM-RECORD")
    dkim["observed"] = "v=DKIM1; k=rsa; p=" + "A" * 400
    controls = {c.id: c for c in judge_dns(evidence)}
    assert controls["DNS-DMARC-RUA-AUTH"].status == "not-applicable"
    assert controls["DNS-DKIM-RECORD"].evidence.endswith("A" * (120 - len("v=DKIM1; k=rsa; p=")) + "...")


def test_dns_that_cannot_be_asked_makes_every_dns_control_an_error() -> None:
    evidence = {**fx.dns(), "results": [], "answered": 0,
                "error": "no lookup got an answer from 127.0.0.1:5353 (lookup failed: no answer within 5 s)"}
    controls = judge_dns(evidence)
    assert {c.status for c in controls} == {"error"} and len(controls) == len(cat.DNS_SPECS)
    assert controls[0].evidence == ("DNS could not be checked against 127.0.0.1:5353: no lookup got an answer from "
                                    "127.0.0.1:5353 (lookup failed: no answer within 5 s)")
    assert [c.id for c in failing_at(controls, "high")][:2] == ["DNS-MX", "DNS-SPF-RECORD"]
