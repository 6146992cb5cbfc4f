"""Judging recorded evidence: a healthy appliance passes, and each control fails for its own misconfiguration."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import auditfixtures as fx
from mailappliance.audit.host import HostInspection
from mailappliance.audit.judge_dns import judge_dns, worst
from mailappliance.audit.judge_host import SERVICES, SiteExpectations, host_services, judge_host
from mailappliance.audit.judge_probes import banner_leak, judge_mta_sts, judge_probes, name_matches
from mailappliance.controls import catalogue as cat
from mailappliance.controls.model import Control, failing_at

SITE = SiteExpectations(spam_add_header=6, spam_reject=15)
# The README's outbound: example as the inventory writes it; fx.outbound_host() is its healthy appliance.
OUTBOUND = SiteExpectations(spam_add_header=6, spam_reject=15, outbound=fx.outbound_site(),
                            archive=fx.ARCHIVE_SITE)
OUTBOUND_IDS = ("OUTBOUND-RELAY-TLS", "OUTBOUND-ROUTE-FALLBACK", "OUTBOUND-ACCOUNT-LIMITS", "OUTBOUND-CHANNEL-QUEUES")
ARCHIVE_IDS = ("ARCHIVE-COVERAGE", "ARCHIVE-INTEGRITY", "ARCHIVE-RETENTION", "ARCHIVE-HOLDS", "ARCHIVE-SPACE")


def statuses(controls: list[Control]) -> dict[str, str]:
    return {control.id: control.status for control in controls}


def probe_controls(probes: dict[str, Any], now: datetime.datetime = fx.NOW) -> dict[str, str]:
    return statuses(judge_probes(probes, fx.HOSTNAME, now, fx.policy()))


def host_controls(host: dict[str, Any], expected: dict[str, str] | None = None,
                  site: SiteExpectations = SITE) -> dict[str, str]:
    return statuses(judge_host(host, fx.EXPECTED_FILES if expected is None else expected, site))


def test_healthy_probes_pass_with_self_signed_warnings() -> None:
    seen = probe_controls(fx.probes())
    warns = {cid for cid, status in seen.items() if status == "warn"}
    assert warns == {f"TLS-{port}-CERT-CHAIN" for port in (25, 587, 465, 993, 995, 4190)} | {"MTASTS-POLICY"}
    assert {status for cid, status in seen.items() if cid not in warns} == {"pass"}
    # Four TLS controls per mail port, the protocol versions of the web port, SMTP policy, the MTA-STS policy.
    assert len(seen) == 6 * 4 + 1 + 7 + 1
    assert "TLS-443-CERT-NAME" not in seen


def test_healthy_host_passes() -> None:
    seen = host_controls(fx.outbound_host(), site=OUTBOUND)
    assert set(seen.values()) == {"pass"}, seen
    assert len(seen) == 28


def test_a_site_without_outbound_makes_the_outbound_controls_not_applicable() -> None:
    # Whatever the host holds: the audit has no routes, channels or accounts to hold it to.
    for host in (fx.host(), fx.outbound_host(), {**fx.host(), "outbound": {"error": "exit 1"}}):
        controls = judge_host(host, fx.EXPECTED_FILES, SITE)
        assert {c.id: c.status for c in controls if c.status != "pass"} == dict.fromkeys(
            OUTBOUND_IDS + ARCHIVE_IDS, "not-applicable")
        assert {c.evidence for c in controls if c.id in OUTBOUND_IDS} == {"the site has no outbound: section"}
    assert len(controls) == 28


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


def _drop(path: list[Any], prefix: str) -> Callable[[dict[str, Any]], None]:
    """Remove the lines of a list that start with `prefix` (a master.cf override, say)."""
    def apply(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = [line for line in target[path[-1]] if not line.startswith(prefix)]
    return apply


HOST_BREAKS = {
    "POSTFIX-RELAY": _set(["postconf", 1], "mynetworks = 0.0.0.0/0"),
    "POSTFIX-TLS-PROTOCOLS": _set(["postconf", 2], "smtpd_tls_protocols = >=TLSv1"),
    "POSTFIX-TLS-CIPHERS": _set(["postconf", 5], "smtpd_tls_mandatory_ciphers = low"),
    "POSTFIX-AUTH": _set(["postconf", 8], "smtpd_sasl_auth_enable = yes"),
    "POSTFIX-MILTER-TEMPFAIL": _set(["postconf", 7], "milter_default_action = accept"),
    "POSTFIX-SMUGGLING": _set(["postconf", 10], "smtpd_forbid_bare_newline = no"),
    "POSTFIX-QUEUE-AGE": _set(["postfix_queues", "summary"], [f"deferred 3 {int(fx.CLOCK) - 5 * 86400}"]),
    # The orders channel may send to isp1 in clear (TLS if offered, and then unchecked).
    "OUTBOUND-RELAY-TLS": _set(["outbound", "instances", 0, "tls_policy", fx.ISP1], "may"),
    # The orders channel's "*" route (isp1, then isp2) lost its fallback: isp1 down stops the channel.
    "OUTBOUND-ROUTE-FALLBACK": _drop(["outbound", "instances", 0, "services"], "route2/unix/smtp_fallback_relay"),
    # The shop account without a daily quota.
    "OUTBOUND-ACCOUNT-LIMITS": _set(["outbound", "accounts", "accounts", "shop", "daily_quota"], None),
    # 25,000 messages deferred in the bulk channel, more than its active queue (20,000) can retry at once.
    "OUTBOUND-CHANNEL-QUEUES": _set(["outbound", "instances", 1, "queues", "summary"],
                                    [f"deferred 25000 {int(fx.CLOCK) - 3600}"]),
    # A message Postfix accepted that the archive does not have.
    "ARCHIVE-COVERAGE": _set(["archive", "reconcile", "missing_count"], 1),
    "ARCHIVE-INTEGRITY": _set(["archive", "verify"], {
        "ok": False, "counts": {"log_entries": 5160, "messages": 5120, "checkpoints": 40}, "problem_count": 1,
        "problems": ["message 1f0c... (record 17): its file's content changed"], "notes": []}),
    # The host keeps mail one year where the site says seven.
    "ARCHIVE-RETENTION": _set(["archive", "retention", "policy", "default_days"], 365),
    "ARCHIVE-HOLDS": _set(["archive", "holds"], {"error": "DatabaseError: database disk image is malformed"}),
    "ARCHIVE-SPACE": _set(["archive", "store", "free"], 2**30),
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
    # The appliance of a site with every outbound feature, so that every host control is judged.
    host = fx.outbound_host()
    HOST_BREAKS[control](host)
    seen = host_controls(host, site=OUTBOUND)
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


def outbound_control(control_id: str, host: dict[str, Any] | None = None,
                     site: dict[str, Any] | None = None) -> Control:
    """One outbound control, judged on the example site's appliance (or `host`) against the example site (or
    `site`, the inventory's outbound variables)."""
    expectations = OUTBOUND if site is None else SiteExpectations(6, 15, site)
    controls = judge_host(fx.outbound_host() if host is None else host, fx.EXPECTED_FILES, expectations)
    return next(c for c in controls if c.id == control_id)


def _carrier(site: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in site["carriers"] if c["name"] == name)


@pytest.mark.parametrize("site_tls, host_level, status", [
    ("verify", "verify", "pass"), ("verify", "secure", "pass"), ("verify", "dane-only", "pass"),
    ("encrypt", "verify", "pass"),
    # encrypt: TLS without a certificate check. What the site asked for is a warning, less than it asked a failure.
    ("encrypt", "encrypt", "warn"), ("verify", "encrypt", "fail"),
    # Opportunistic levels let the relay login and the mail cross in clear.
    ("verify", "may", "fail"), ("encrypt", "dane", "fail"), ("verify", "none", "fail"), ("verify", "", "fail"),
])
def test_relay_tls_levels(site_tls: str, host_level: str, status: str) -> None:
    site, host = fx.outbound_site(), fx.outbound_host()
    _carrier(site, "isp2")["tls"] = site_tls
    for instance in (host["outbound"]["staff"], *host["outbound"]["instances"]):
        instance["tls_policy"][fx.ISP2] = host_level
    control = outbound_control("OUTBOUND-RELAY-TLS", host, site)
    assert control.status == status
    lines = control.evidence.splitlines()
    # Each instance (staff, orders, bulk) and each relay its routes use: one line each.
    assert len(lines) == 6 and f"{status}: postfix-orders: isp2 {fx.ISP2}: {host_level}" in "\n".join(lines)


def test_relay_tls_fails_for_a_relay_missing_from_the_policy_table_or_a_transport_without_it() -> None:
    host = fx.outbound_host()
    del host["outbound"]["staff"]["tls_policy"][fx.ISP1]
    control = outbound_control("OUTBOUND-RELAY-TLS", host)
    assert control.status == "fail"
    assert (f"fail: postfix (staff): isp1 {fx.ISP1} is not in the TLS policy table "
            "(texthash:/etc/postfix/tls_policy), so smtp_tls_security_level = dane applies") in control.evidence
    host = fx.outbound_host()
    host["outbound"]["instances"][1]["services"].append("route2/unix/smtp_tls_policy_maps =")
    control = outbound_control("OUTBOUND-RELAY-TLS", host)
    assert control.status == "fail"
    assert ("fail: postfix-bulk: route2/unix overrides smtp_tls_policy_maps (empty), so its relays are not held to "
            "texthash:/etc/postfix-bulk/tls_policy") in control.evidence


def test_relay_tls_accepts_a_transport_that_asks_its_instances_table_first() -> None:
    # The example site's direct route asks the MTA-STS resolver after the table (auditfixtures: route3).
    control = outbound_control("OUTBOUND-RELAY-TLS", fx.outbound_host())
    assert control.status == "pass", control.evidence
    host = fx.outbound_host()
    services = host["outbound"]["instances"][0]["services"]
    services.append(f"route2/unix/smtp_tls_policy_maps = {fx.MTA_STS_MAP},texthash:/etc/postfix-orders/tls_policy")
    control = outbound_control("OUTBOUND-RELAY-TLS", host)
    assert control.status == "fail"
    assert (f"fail: postfix-orders: route2/unix overrides smtp_tls_policy_maps ({fx.MTA_STS_MAP},texthash:"
            "/etc/postfix-orders/tls_policy), so its relays are not held to texthash:/etc/postfix-orders/tls_policy"
            ) in control.evidence


def test_relay_tls_judges_only_the_relays_a_channels_routes_use() -> None:
    site = fx.outbound_site()
    # isp1 only serves the dedicated channels now: the staff instance's table need not hold it.
    site["routes"][0]["channels"] = ["orders", "bulk"]
    site["routes"].insert(0, {"domains": ["partner.example.net"], "channels": ["staff"], "carriers": ["isp2"]})
    host = fx.outbound_host()
    del host["outbound"]["staff"]["tls_policy"][fx.ISP1]
    control = outbound_control("OUTBOUND-RELAY-TLS", host, site)
    assert control.status == "pass"
    assert [line for line in control.evidence.splitlines() if "(staff)" in line] == [
        f"pass: postfix (staff): isp2 {fx.ISP2}: verify"]
    # Only direct delivery: no relay to judge.
    site["routes"] = [{"domains": ["*"], "channels": ["staff", "orders", "bulk"], "carriers": ["direct"]}]
    control = outbound_control("OUTBOUND-RELAY-TLS", host, site)
    assert (control.status, control.evidence) == ("not-applicable", "no route sends through a relay carrier")


def test_route_fallback_evidence_names_each_route_and_its_transport() -> None:
    control = outbound_control("OUTBOUND-ROUTE-FALLBACK")
    assert control.evidence.splitlines() == [
        f"pass: postfix-{channel}: {domains} via {carriers} ({transport} with smtp_fallback_relay {fallback})"
        for channel in ("orders", "bulk")
        for domains, carriers, transport, fallback in (
            (".de, .fr, .co.uk and 1 more", "isp2, then isp1", "route1", fx.ISP1),
            ("*", "isp1, then isp2", "route2", fx.ISP2))]


def test_a_route_with_one_carrier_warns_and_a_host_without_the_sites_fallback_fails() -> None:
    # The site's orders and bulk "*" route has isp1 alone; the host does as told (route2 has no fallback).
    site = fx.outbound_site()
    site["routes"][1]["carriers"] = ["isp1"]
    host = fx.outbound_host()
    for instance in host["outbound"]["instances"]:
        instance["services"].remove(f"route2/unix/smtp_fallback_relay = {fx.ISP2}")
    control = outbound_control("OUTBOUND-ROUTE-FALLBACK", host, site)
    assert control.status == "warn" and control.severity == "medium"
    assert f"warn: postfix-orders: * via isp1 only: no fallback carrier (route2:{fx.ISP1})" in control.evidence
    # The site asks isp1, then isp2, and the host has isp1 alone: failover would not happen.
    control = outbound_control("OUTBOUND-ROUTE-FALLBACK", host)
    assert control.status == "fail"
    assert (f"fail: postfix-bulk: * via isp1, then isp2: no transport of the transport table sends to {fx.ISP1} "
            f"with fallback {fx.ISP2}; to that next hop the host has route2:{fx.ISP1} (fallback none)"
            in control.evidence)


def test_the_implied_direct_route_of_a_channel_warns() -> None:
    # Without a "*" route of its own, a channel's other mail goes direct, with no carrier to fall back to.
    site = fx.outbound_site()
    site["routes"][1]["channels"] = ["orders"]
    site["routes"][2]["channels"] = ["staff", "bulk"]
    host = fx.outbound_host()
    transports = host["outbound"]["instances"][1]["transports"]
    transports["route3:"] = transports.pop(f"route2:{fx.ISP1}")
    control = outbound_control("OUTBOUND-ROUTE-FALLBACK", host, site)
    assert control.status == "warn"
    assert "warn: postfix-bulk: * via direct only: no fallback carrier (route3:)" in control.evidence.splitlines()


def test_route_fallback_is_not_applicable_without_dedicated_channels() -> None:
    site = fx.outbound_site()
    site["channels"], site["accounts"] = [], []
    for route in site["routes"]:
        route["channels"] = ["staff"]
    control = outbound_control("OUTBOUND-ROUTE-FALLBACK", site=site)
    assert (control.status, control.evidence) == ("not-applicable", "the site has no dedicated channel")
    assert outbound_control("OUTBOUND-ACCOUNT-LIMITS", site=site).status == "not-applicable"


def test_a_missing_channel_instance_fails_every_outbound_control() -> None:
    host = fx.outbound_host()
    host["outbound"]["instances"] = host["outbound"]["instances"][:1]
    controls = {i: outbound_control(i, host) for i in OUTBOUND_IDS}
    assert {i: c.status for i, c in controls.items()} == dict.fromkeys(OUTBOUND_IDS, "fail")
    assert all("fail: postfix-bulk: no such Postfix instance on the host (not in the staff instance's "
               "multi_instance_directories)" in c.evidence for c in controls.values())


def test_what_the_reader_could_not_read_is_an_error() -> None:
    host = fx.outbound_host()
    host["outbound"]["instances"][0]["errors"] = [
        "postmap -s texthash:/etc/postfix-orders/tls_policy: exit 1: postmap: fatal: open /etc/postfix-orders/"
        "tls_policy: No such file or directory"]
    control = outbound_control("OUTBOUND-RELAY-TLS", host)
    assert control.status == "error"
    assert "error: postfix-orders: postmap -s texthash:/etc/postfix-orders/tls_policy: exit 1" in control.evidence
    host = {**fx.outbound_host(), "outbound": {"error": "the outbound reader failed (exit 1): Traceback ..."}}
    controls = [outbound_control(i, host) for i in OUTBOUND_IDS]
    assert {c.status for c in controls} == {"error"}
    assert controls[0].evidence == ("the host's outbound setup could not be read: the outbound reader failed (exit 1): "
                                    "Traceback ...")


def test_account_limits_evidence() -> None:
    control = outbound_control("OUTBOUND-ACCOUNT-LIMITS")
    assert control.severity == "high"
    assert control.evidence.splitlines() == [
        "pass: shop (orders): daily quota 50000, 600 a minute",
        "pass: newsletter (bulk): daily quota 2000000, 6000 a minute",
        "pass: mailappliance-account-policy.socket is active",
        f"pass: postfix-bulk 2588/inet: smtpd_end_of_data_restrictions = check_policy_service {fx.POLICY_SOCKET}",
        f"pass: postfix-orders 2587/inet: smtpd_end_of_data_restrictions = check_policy_service {fx.POLICY_SOCKET}",
    ]


def _accounts(host: dict[str, Any]) -> dict[str, Any]:
    return host["outbound"]["accounts"]


@pytest.mark.parametrize("case, change, status, line", [
    ("missing", lambda h: _accounts(h)["accounts"].pop("newsletter"), "fail",
     "fail: newsletter (bulk): not in /etc/mailappliance/accounts.json, so nothing limits it"),
    ("no rate", lambda h: _accounts(h)["accounts"]["shop"].update(rate_per_minute=0), "fail",
     "fail: shop (orders): daily quota 50000, 0 a minute: a limit is missing or not a positive number"),
    ("not the site's", lambda h: _accounts(h)["accounts"]["shop"].update(daily_quota=500000), "fail",
     "fail: shop (orders): daily quota 500000, 600 a minute; the site has orders, daily quota 50000, 600 a minute"),
    ("other channel", lambda h: _accounts(h)["accounts"]["shop"].update(channel="bulk"), "fail",
     "fail: shop (bulk): daily quota 50000, 600 a minute; the site has orders, daily quota 50000, 600 a minute"),
    ("unreadable", lambda h: _accounts(h).update(accounts=None, error="/etc/mailappliance/accounts.json: "
                                                 "FileNotFoundError: [Errno 2] No such file or directory"), "fail",
     "fail: the accounts file of mailappliance-account-policy could not be read, so no account's limits are known: "
     "/etc/mailappliance/accounts.json: FileNotFoundError: [Errno 2] No such file or directory"),
    ("socket down", lambda h: _accounts(h).update(socket="failed"), "fail",
     "fail: mailappliance-account-policy.socket is failed: no message of an account can be counted, so each is "
     "deferred"),
    ("listener without the policy", lambda h: h["outbound"]["instances"][0]["services"].append(
        "2587/inet/smtpd_end_of_data_restrictions ="), "fail",
     "fail: postfix-orders 2587/inet: smtpd_end_of_data_restrictions = (empty), so its accounts send without limits"),
    ("stale", lambda h: _accounts(h)["accounts"].update(old={"channel": "bulk", "daily_quota": 1,
                                                             "rate_per_minute": 1}), "warn",
     "warn: /etc/mailappliance/accounts.json also lists old, accounts the site does not have"),
])
def test_account_limits_fail_for_what_lets_an_account_send_unlimited(case: str, change: Callable[[dict], Any],
                                                                      status: str, line: str) -> None:
    host = fx.outbound_host()
    change(host)
    control = outbound_control("OUTBOUND-ACCOUNT-LIMITS", host)
    assert control.status == status, case
    assert line in control.evidence.splitlines(), control.evidence


def test_channel_queues_evidence() -> None:
    control = outbound_control("OUTBOUND-CHANNEL-QUEUES")
    assert control.evidence.splitlines() == [
        "pass: postfix (staff): deferred: 1 message, oldest 3.0 h (ages: POSTFIX-QUEUE-AGE); deferred count: warn "
        "over 5000, fail over 20000",
        *[f"pass: postfix-{channel}: maildrop: empty; incoming: empty; active: empty; deferred: empty; hold: empty; "
          "deferred count: warn over 5000, fail over 20000" for channel in ("orders", "bulk")],
    ]


@pytest.mark.parametrize("instance, summary, limit, status", [
    # Deferred messages against a quarter of the active queue limit (warn) and the limit itself (fail).
    ("bulk", ["deferred 5000 {old}"], "20000", "pass"), ("bulk", ["deferred 5001 {old}"], "20000", "warn"),
    ("bulk", ["deferred 20000 {old}"], "20000", "warn"), ("bulk", ["deferred 20001 {old}"], "20000", "fail"),
    ("bulk", ["deferred 251 {old}"], "1000", "warn"), ("bulk", ["deferred 1001 {old}"], "1000", "fail"),
    # The staff instance's count is judged here too, its ages by POSTFIX-QUEUE-AGE only.
    ("staff", ["deferred 20001 {old}"], "20000", "fail"), ("staff", ["active 1 {stuck}"], "20000", "pass"),
    # A dedicated channel's ages as POSTFIX-QUEUE-AGE judges the staff ones.
    ("orders", ["active 1 {stuck}"], "20000", "fail"), ("orders", ["deferred 1 {week}"], "20000", "fail"),
    ("orders", ["deferred 1 {two_days}"], "20000", "warn"), ("orders", ["hold 3 {two_days}"], "20000", "warn"),
])
def test_channel_queue_thresholds(instance: str, summary: list[str], limit: str, status: str) -> None:
    host = fx.outbound_host()
    times = {"old": int(fx.CLOCK) - HOUR, "stuck": int(fx.CLOCK) - 3 * HOUR, "week": int(fx.CLOCK) - 7 * DAY,
             "two_days": int(fx.CLOCK) - 2 * DAY}
    lines = [line.format(**times) for line in summary]
    outbound = host["outbound"]
    target = outbound["staff"] if instance == "staff" else outbound["instances"][("orders", "bulk").index(instance)]
    target["postconf"] = [line if not line.startswith("qmgr_message_active_limit") else
                          f"qmgr_message_active_limit = {limit}" for line in target["postconf"]]
    if instance == "staff":
        host["postfix_queues"]["summary"] = lines
    else:
        target["queues"]["summary"] = lines
    assert outbound_control("OUTBOUND-CHANNEL-QUEUES", host).status == status


def test_a_channel_that_is_down_makes_its_queues_an_error() -> None:
    host = fx.outbound_host()
    host["outbound"]["instances"][0]["queues"] = {
        "rc": 69, "summary": [], "error": "postqueue: fatal: Queue report unavailable - mail system is down"}
    control = outbound_control("OUTBOUND-CHANNEL-QUEUES", host)
    assert control.status == "error"
    assert ("error: postfix-orders: postqueue -j failed (exit 69): postqueue: fatal: Queue report unavailable - "
            "mail system is down") in control.evidence.splitlines()


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
        outbound = None
        archive = None

    changed = HostInspection(evidence={"h": fx.host()}, expected={"h": fx.EXPECTED_FILES},
                             stats={"changed": {"h": 1}, "ok": {"h": 16}})
    controls, _ = judge_inspection(changed, _Site())  # type: ignore[arg-type]
    assert statuses(controls)["AUDIT-READ-ONLY"] == "error"
    assert [c.id for c in failing_at(controls, "critical")] == ["AUDIT-READ-ONLY"]
    unreachable = HostInspection(stats=None, error="cannot reach h")
    controls, _ = judge_inspection(unreachable, _Site())  # type: ignore[arg-type]
    assert statuses(controls) == {"AUDIT-READ-ONLY": "error", "AUDIT-HOST-INSPECTION": "error"}


def test_the_site_files_outbound_section_is_what_the_host_is_judged_by(outbound_site: Path, site_dir: Path) -> None:
    from mailappliance.audit.run import judge_inspection
    from mailappliance.site import load_site

    # With an archive: section of the defaults, which the healthy host keeps.
    path = site_dir / outbound_site
    path.write_text(path.read_text() + "archive:\n  on_failure: defer\n")
    site = load_site(path)
    inspection = HostInspection(evidence={"h": fx.outbound_host()}, expected={"h": fx.EXPECTED_FILES},
                                stats={"changed": {}, "ok": {"h": 16}})
    controls, _ = judge_inspection(inspection, site)
    seen = statuses(controls)
    assert set(seen.values()) == {"pass"} and set(OUTBOUND_IDS + ARCHIVE_IDS) <= set(seen), seen
    # The site's routes, as the inventory writes them for the roles, are what each route's verdict names.
    fallback = next(c for c in controls if c.id == "OUTBOUND-ROUTE-FALLBACK")
    assert fallback.evidence.splitlines()[1].startswith("pass: postfix-orders: * via isp1, then isp2 (route2")
    inspection.evidence["h"]["outbound"]["accounts"]["accounts"]["shop"]["rate_per_minute"] = 6000
    controls, _ = judge_inspection(inspection, site)
    assert [c.id for c in controls if c.status != "pass"] == ["OUTBOUND-ACCOUNT-LIMITS"]


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


def test_host_services_names_a_stopped_channel_instance() -> None:
    outbound = {"carriers": [], "routes": [], "accounts": [], "channels": [{"name": "orders"}, {"name": "bulk"}]}
    services = {name: {"state": "running", "status": "enabled"} for name in SERVICES}
    services["postfix@postfix-orders.service"] = {"state": "running", "status": "active"}
    services["postfix@postfix-bulk.service"] = {"state": "stopped", "status": "active"}
    control = host_services(services, outbound)
    assert control.status == "fail"
    assert control.evidence.startswith("not running or not enabled: postfix@postfix-bulk.service;")

    services["postfix@postfix-bulk.service"]["state"] = "running"
    assert host_services(services, outbound).status == "pass"
    # Without an outbound: section no instance is expected.
    del services["postfix@postfix-bulk.service"]
    assert host_services(services, None).status == "pass"
