"""Recorded audit evidence of a healthy appliance (taken from the demo site), for judging and report tests.

Each function returns a fresh copy, so a test can break one value and see exactly one control fail.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
from pathlib import Path
from typing import Any

import yaml

from mailappliance.audit.judge_host import outbound_expectations, settings
from mailappliance.controls import catalogue as cat
from mailappliance.site.mta_sts import mta_sts_policy
from mailappliance.site import DEFAULT_MTA_STS_MAX_AGE

HOSTNAME = "mail.demo.test"
DOMAIN = "demo.test"
NOW = datetime.datetime(2026, 11, 25, 13, 0, tzinfo=datetime.UTC)
CLOCK = NOW.timestamp()

_CERT = {
    "subject": "CN=mail.demo.test", "issuer": "CN=mail.demo.test", "self_signed": True,
    "dns_names": ["mail.demo.test"], "common_names": ["mail.demo.test"],
    "not_before": "2026-11-25T13:07:10+00:00", "not_after": "2027-12-27T13:07:10+00:00",
    "serial": "2e47f1ed", "sha256": "54aa7808d6aba6a2",
}
_VERSIONS = {
    "TLSv1": {"accepted": False, "reason": "TLSV1_ALERT_PROTOCOL_VERSION"},
    "TLSv1.1": {"accepted": False, "reason": "TLSV1_ALERT_PROTOCOL_VERSION"},
    "TLSv1.2": {"accepted": True, "reason": ""},
    "TLSv1.3": {"accepted": True, "reason": ""},
}
_GREETINGS = {
    25: "mail.demo.test ESMTP", 587: "mail.demo.test ESMTP", 465: "220 mail.demo.test ESMTP",
    993: "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN AUTH=LOGIN] "
         "mail.demo.test ready.",
    995: "+OK mail.demo.test ready.", 4190: 'OK "mail.demo.test ready."', 443: "",
}
_KINDS = {25: "smtp-starttls", 587: "smtp-starttls", 465: "smtp-tls", 993: "imap-tls", 995: "pop3-tls",
          4190: "sieve-starttls", 443: "https"}
_EHLO_BEFORE = ["8bitmime", "chunking", "dsn", "enhancedstatuscodes", "ehlo", "pipelining", "size", "smtputf8",
                "starttls"]


def policy(hostname: str = HOSTNAME) -> str:
    """The MTA-STS policy the plan of a site with this host name holds (mode enforce, default max_age)."""
    return mta_sts_policy("enforce", hostname, DEFAULT_MTA_STS_MAX_AGE)


def mta_sts(domain: str = DOMAIN, hostname: str = HOSTNAME) -> dict[str, Any]:
    """What the MTA-STS fetch of one domain sees on a healthy appliance (self-signed certificate)."""
    body = policy(hostname)
    return {
        "domain": domain, "host": f"mta-sts.{domain}", "url": f"https://mta-sts.{domain}/.well-known/mta-sts.txt",
        "address": "10.88.0.25", "port": 443, "tls_version": "TLSv1.3",
        "certificate": {**copy.deepcopy(_CERT), "dns_names": [hostname, f"mta-sts.{domain}"]},
        "reachable": True, "status": 200, "reason": "OK", "content_type": "text/plain", "location": "",
        "body": body, "body_bytes": len(body.encode()), "body_sha256": hashlib.sha256(body.encode()).hexdigest(),
        "trust": {"verified": False, "verify_code": 18, "verify_message": "self-signed certificate"},
    }


def probes() -> dict[str, Any]:
    ports = {
        str(port): {
            "port": port, "kind": kind, "required": port != 4190, "reachable": True, "greeting": _GREETINGS[port],
            "negotiated": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384", "certificate": copy.deepcopy(_CERT),
            "versions": copy.deepcopy(_VERSIONS),
            "trust": {"verified": False, "verify_code": 18, "verify_message": "self-signed certificate"},
        }
        for port, kind in _KINDS.items()
    }
    ports["443"]["certificate"]["dns_names"] = [HOSTNAME, f"mta-sts.{DOMAIN}"]
    after = [f for f in _EHLO_BEFORE if f != "starttls"]
    return {
        "address": "10.88.0.25",
        "server_name": HOSTNAME,
        "ports": ports,
        "smtp": {
            "25": {"reachable": True, "banner": "mail.demo.test ESMTP", "before_tls": list(_EHLO_BEFORE),
                   "after_tls": list(after), "auth_after_tls": []},
            "587": {"reachable": True, "banner": "mail.demo.test ESMTP", "before_tls": list(_EHLO_BEFORE),
                    "after_tls": sorted([*after, "auth"]), "auth_after_tls": ["PLAIN", "LOGIN"]},
            "relay": {"reachable": True, "steps": [
                {"command": "MAIL FROM:<audit-probe@relay-test-sender.example>", "code": 250, "reply": "2.1.0 Ok"},
                {"command": "RCPT TO:<audit-probe@relay-test-recipient.example.net>", "code": 554,
                 "reply": "5.7.1 <audit-probe@relay-test-recipient.example.net>: Relay access denied"},
            ]},
        },
        "mta_sts": {DOMAIN: mta_sts()},
    }


EXPECTED_FILES = {
    "/etc/postfix/main.cf": "e7f1a6cc12688863cc17bcd1a42f01ef053ccf487b24a37cdbd67fe24d084d4d",
    "/etc/dovecot/users": "a81ccd8aeb3d95fc0f088d3acac4e3515e2e392d6bea92209150aa6e7c738f90",
}


def host() -> dict[str, Any]:
    services = {name: {"name": name, "source": "systemd", "state": "running", "status": "enabled"}
                for name in ("dovecot.service", "rspamd.service", "redis-server.service", "clamav-daemon.service",
                             "nginx.service", "fail2ban.service")}
    # Postfix's own instance and the channels' of outbound_site(), all started through postfix.service.
    for name in ("postfix@-.service", "postfix@postfix-orders.service", "postfix@postfix-bulk.service"):
        services[name] = {"name": name, "source": "systemd", "state": "running", "status": "active"}
    return {
        "postconf": [
            "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
            "mynetworks = 127.0.0.0/8 [::1]/128",
            "smtpd_tls_protocols = >=TLSv1.2", "smtpd_tls_mandatory_protocols = >=TLSv1.2",
            "smtpd_tls_ciphers = high", "smtpd_tls_mandatory_ciphers = high", "smtpd_tls_security_level = may",
            "milter_default_action = tempfail", "smtpd_sasl_auth_enable = no", "smtpd_tls_auth_only = yes",
            "smtpd_forbid_bare_newline = normalize", "smtpd_forbid_bare_newline_exclusions = $mynetworks",
            "smtpd_tls_chain_files = /etc/mailappliance/tls/key.pem, /etc/mailappliance/tls/cert.pem",
        ],
        "postconf_services": [
            "submission/inet/smtpd_sasl_auth_enable = yes", "submission/inet/smtpd_tls_auth_only = yes",
            "submission/inet/smtpd_tls_security_level = encrypt",
            "submissions/inet/smtpd_sasl_auth_enable = yes", "submissions/inet/smtpd_tls_auth_only = yes",
            "submissions/inet/smtpd_tls_security_level = encrypt", "submissions/inet/smtpd_tls_wrappermode = yes",
        ],
        "doveconf": ["ssl = required", "ssl_min_protocol = TLSv1.2", "disable_plaintext_auth = yes",
                     "auth_mechanisms = plain login"],
        "passdb": ["passdb {", "  args = scheme=SHA512-CRYPT username_format=%Lu /etc/dovecot/users",
                   "  driver = passwd-file", "}"],
        "password_schemes": ["SHA512-CRYPT"],
        "rspamd_actions": '{\n    "reject": 15,\n    "add_header": 6\n}',
        "dkim_keys": [[{"gr_name": "_rspamd", "mode": "0640", "path": "/var/lib/rspamd/dkim/demo.test.mail.key",
                        "pw_name": "_rspamd"}, "Public-Key: (2048 bit)"]],
        "clamav_databases": [{"mtime": CLOCK - 3600, "path": "/var/lib/clamav/eicar.hdb", "size": 58}],
        "services": services,
        "upgrades": [],
        "apt_lists": [{"mtime": CLOCK - 3600,
                       "path": "/var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_InRelease"}],
        "key_files": ["/etc/mailappliance/tls/key.pem\troot\troot\t600", "/etc/dovecot/users\troot\tdovecot\t640",
                      "/etc/rspamd/local.d/worker-controller.inc\troot\t_rspamd\t640",
                      "/etc/rspamd/local.d/redis.conf\troot\t_rspamd\t640", "/etc/redis/redis.conf\troot\tredis\t640"],
        "key_files_missing": [],
        "files": [f"{digest}  {path}" for path, digest in EXPECTED_FILES.items()],
        "files_missing": [],
        # postqueue -j summed up on the host: one message deferred for three hours (a receiver that is down).
        "postfix_queues": {"rc": 0, "summary": [f"deferred 1 {int(CLOCK) - 3 * 3600}"], "error": ""},
        # The outbound reader on an appliance without an outbound: section: the staff instance only, no tables.
        "outbound": {
            "staff": _instance("/etc/postfix", "", {"transport_maps": "", "smtp_tls_policy_maps": "",
                                                   "smtpd_end_of_data_restrictions": ""}, {}, {}, []),
            "instances": [],
            "accounts": {"unit": "mailappliance-account-policy", "file": "", "accounts": None,
                         "error": "mailappliance-account-policy.service names no --accounts file",
                         "socket": "inactive"},
        },
        # GET /stat of Rspamd's controller: seven scans since it started, the rest of the ring empty.
        "rspamd_stat": {"status": 200, "msg": "OK (966 bytes)", "scanned": 7, "uptime": 1366,
                        "scan_times": [0.068457, 0.004405, 0.004485, 0.007376, 0.010481, 0.006477, 0.00289,
                                       *[None] * 24]},
        "clock": str(int(CLOCK)),
    }


# The README's outbound: example (tests/conftest.py OUTBOUND_SITE) as the inventory writes it for the roles.
OUTBOUND_SITE_VARS = Path(__file__).resolve().parent / "golden" / "outbound" / "group_vars" / "all" / "site.yml"
POLICY_SOCKET = "unix:/run/mailappliance-account-policy/policy.sock"
ISP1, ISP2 = "[smtp.isp1.example]:587", "[relay.isp2.example]:2525"
MTA_STS_MAP = "socketmap:inet:127.0.0.1:8461:postfix"


def outbound_site() -> dict[str, list[dict[str, Any]]]:
    expectations = outbound_expectations(yaml.safe_load(OUTBOUND_SITE_VARS.read_text()))
    assert expectations is not None
    return expectations


def _instance(config_directory: str, name: str, settings: dict[str, str], policy: dict[str, str],
              transports: dict[str, int], services: list[str]) -> dict[str, Any]:
    """One Postfix instance as playbooks/audit.yml's outbound reader prints it."""
    values = {"config_directory": config_directory, "multi_instance_name": name, "multi_instance_directories": "",
              "transport_maps": f"texthash:{config_directory}/transport",
              "smtp_tls_policy_maps": f"texthash:{config_directory}/tls_policy", "smtp_tls_security_level": "dane",
              "smtp_fallback_relay": "",
              "smtpd_end_of_data_restrictions": f"check_policy_service {POLICY_SOCKET}",
              "qmgr_message_active_limit": "20000", **settings}
    found = {"name": name, "postconf": [f"{key} = {value}".rstrip() for key, value in values.items()],
             "services": services, "tls_policy": policy, "transports": transports, "errors": []}
    if name:
        found["queues"] = {"rc": 0, "summary": [], "error": ""}
    return found


def settings_of(instance: dict[str, Any]) -> dict[str, str]:
    """The effective settings of an instance the reader printed."""
    return settings(instance["postconf"])


def _route_services(syslog: str) -> list[str]:
    """`postconf -P` of the route transports every instance has: isp2 then isp1, isp1 then isp2, direct (which asks
    the MTA-STS resolver after the instance's own TLS policy table; the syslog name is the instance's folder)."""
    return [f"route1/unix/syslog_name = {syslog}/route1", f"route1/unix/smtp_fallback_relay = {ISP1}",
            "route1/unix/smtp_sasl_auth_enable = yes", f"route2/unix/syslog_name = {syslog}/route2",
            f"route2/unix/smtp_fallback_relay = {ISP2}", "route2/unix/smtp_sasl_auth_enable = yes",
            f"route3/unix/syslog_name = {syslog}/route3", "route3/unix/smtp_bind_address = 192.0.2.11",
            f"route3/unix/smtp_tls_policy_maps = texthash:/etc/{syslog}/tls_policy,{MTA_STS_MAP}"]


def outbound() -> dict[str, Any]:
    """The outbound reader on the example site's appliance, healthy: both relays verified, each channel's routes
    with their fallbacks, the accounts' limits as the site's, every queue empty."""
    policy = {ISP1: "verify", ISP2: "verify"}
    overseas = {f"route1:{ISP2}": 4}
    channels = []
    for channel, port in (("orders", 2587), ("bulk", 2588)):
        name = f"postfix-{channel}"
        services = [f"{port}/inet/syslog_name = {name}/submission", f"{port}/inet/smtpd_sasl_auth_enable = yes",
                    f"{port}/inet/smtpd_tls_security_level = encrypt", *_route_services(name)]
        channels.append(_instance(f"/etc/{name}", name, {}, dict(policy), {
            "staff:[127.0.0.1]:10026": 2, "error:5.1.1 mailbox unavailable": 1, **overseas, f"route2:{ISP1}": 1},
            services))
    staff = _instance("/etc/postfix", "", {"multi_instance_directories": "/etc/postfix-orders /etc/postfix-bulk",
                                           "smtpd_end_of_data_restrictions": ""}, dict(policy), {
        "lmtp:unix:private/dovecot-lmtp": 2, "error:5.1.1 mailbox unavailable": 1, **overseas, "route3:": 1},
        ["submission/inet/smtpd_sasl_auth_enable = yes", *_route_services("postfix")])
    return {
        "staff": staff,
        "instances": channels,
        "accounts": {"unit": "mailappliance-account-policy", "file": "/etc/mailappliance/accounts.json",
                     "accounts": {"newsletter": {"channel": "bulk", "daily_quota": 2000000, "rate_per_minute": 6000},
                                  "shop": {"channel": "orders", "daily_quota": 50000, "rate_per_minute": 600}},
                     "error": "", "socket": "active"},
    }


def outbound_host() -> dict[str, Any]:
    """The healthy appliance with the example site's outbound: and archive: sections deployed."""
    return {**host(), "outbound": outbound(), "archive": archive(), "archive_units": ARCHIVE_UNITS}


# An archive: section with the defaults, as archive_expectations reads the inventory: defer, 7 years, hourly.
ARCHIVE_SITE = {"on_failure": "defer", "retention": [{"days": 2557, "direction": "", "domains": []}],
                "checkpoint_minutes": 60}
ARCHIVE_UNITS = ["Id=mailappliance-archive.socket", "ActiveState=active", "",
                 "Id=mailappliance-archive-daily.timer", "ActiveState=active", "",
                 "Id=mailappliance-archive-checkpoint.timer", "ActiveState=active"]


def archive() -> dict[str, Any]:
    """`mailappliance-archive audit` on a healthy appliance (test_audit_archive.py holds its keys to the real
    reader's): the last day reconciled, everything verified, no hold, nothing due, the store a third full."""
    stamp = NOW.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "time": stamp, "on_failure": "defer", "spool": None, "cold": None,
        "store": {"path": "/var/lib/mailappliance/archive", "total": 100 * 2**30, "free": 66 * 2**30},
        "stats": {"records": 5120, "records_deleted": 0, "bytes_received": 41_000_000, "objects_hot": 5120,
                  "objects_cold": 0, "bytes_hot": 17_000_000, "packs": 0, "bytes_cold": 0,
                  "bytes_database": 9_000_000, "log_entries": 5160, "bytes_stored": 17_000_000,
                  "stored_per_received": 0.4146, "last_checkpoint": {"seq": 5150, "time": stamp, "hash": "5e" * 32},
                  "entries_since_checkpoint": 10, "free_bytes_store": 66 * 2**30},
        "verify": {"ok": True, "counts": {"log_entries": 5160, "messages": 5120, "checkpoints": 40},
                   "problem_count": 0, "problems": [], "notes": []},
        "reconcile": {"since": "2026-11-24T12:59:00.000000Z", "until": "2026-11-25T12:59:00.000000Z",
                      "accepted": 830, "archived": 830, "ok": True, "log_lines": 9120, "unread_lines": 1,
                      "missing_count": 0, "twice_count": 0, "never_accepted_count": 0, "missing": [], "twice": []},
        "holds": [],
        "retention": {"policy": {"default_days": 2557, "first_match": True, "rules": []},
                      "file": "/etc/mailappliance/archive-retention.json", "due": 0, "oldest_expiry": None},
    }


def dns(domain: str = DOMAIN, hostname: str = HOSTNAME) -> dict[str, Any]:
    """`dns check` results of a healthy, unsigned zone: one passing record per DNS control (DNSSEC warns)."""
    results = []
    for spec in cat.DNS_SPECS:
        status, state, detail = "pass", "present", "as planned"
        if spec.id == "DNS-DNSSEC":
            status, state, detail = "warn", "missing", "unsigned: no DNSKEY at the domain"
        name = {"DNS-ADDRESS": f"{hostname}.", "DNS-TLSA-MATCH": f"_25._tcp.{hostname}.",
                "DNS-PTR": "25.0.88.10.in-addr.arpa."}.get(spec.id, f"{domain}.")
        results.append({"id": spec.id, "group": domain, "name": name, "type": "TXT", "status": status,
                        "state": state, "observed": "v=spf1 ip4:10.88.0.25 -all", "expected": None,
                        "detail": detail})
    return {"nameserver": "127.0.0.1:5353", "error": "", "answered": 60, "notes": [], "results": results}
