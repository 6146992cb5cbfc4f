"""Judge the host evidence of playbooks/audit.yml (one host) against the controls of the catalogue."""

from __future__ import annotations

import ipaddress
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from mailappliance.audit.judge_archive import judge_archive
from mailappliance.controls import catalogue as cat
from mailappliance.controls.model import ERROR, FAIL, NOT_APPLICABLE, PASS, WARN, Control, worst

LEGACY_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")
STRONG_SCHEMES = ("SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "ARGON2I", "ARGON2ID")
SIGNATURES_WARN_DAYS = 3
SIGNATURES_FAIL_DAYS = 14
# Of the 90th percentile of Rspamd's recent scan times: healthy scans take well under a second, and a scan that
# waits on DNS timeouts takes whole seconds (the catalogue's remediation argues the figures).
SCAN_TIME_WARN_SECONDS = 2.0
SCAN_TIME_FAIL_SECONDS = 10.0
SCAN_TIME_PERCENTILES = (50, 90, 99)
# Age of the oldest message, in seconds, above which a queue warns and fails (None: never fails). Postfix's
# queues in the order mail passes them; deferred mail bounces after maximal_queue_lifetime (5 days on Debian).
QUEUE_AGE_LIMITS: dict[str, tuple[int, int | None]] = {
    "maildrop": (30 * 60, 2 * 3600),
    "incoming": (30 * 60, 2 * 3600),
    "active": (30 * 60, 2 * 3600),
    "deferred": (86400, 4 * 86400),
    "hold": (86400, None),
}
SERVICES = ("postfix@-.service", "dovecot.service", "rspamd.service", "redis-server.service",
            "clamav-daemon.service", "nginx.service", "fail2ban.service")
# Where the appliance keeps secrets, with the owner, group and mode the roles give them. The TLS key is not
# listed: it is the one Postfix loads (the first file of smtpd_tls_chain_files), wherever the tls role put it.
KEY_FILES = {
    "/etc/dovecot/users": ("root", "dovecot", "0640"),
    "/etc/rspamd/local.d/worker-controller.inc": ("root", "_rspamd", "0640"),
    "/etc/rspamd/local.d/redis.conf": ("root", "_rspamd", "0640"),
    "/etc/redis/redis.conf": ("root", "redis", "0640"),
}
TLS_KEY_OWNER = ("root", "root", "0600")
DKIM_KEY_OWNER = ("_rspamd", "_rspamd", "0640")


# Outbound (the site file's outbound: section). The postfix role names a dedicated channel's instance so.
CHANNEL_INSTANCE = "postfix-{}"
STAFF_CHANNEL = "staff"
# smtp_tls_policy_maps levels by what they check of a relay: its certificate (pass), only that TLS is used
# (warn), or nothing at all (fail; dane falls back to may without TLSA records, which a relay rarely has).
VERIFIED_TLS_LEVELS = ("verify", "secure", "dane-only", "fingerprint")
UNVERIFIED_TLS_LEVELS = ("encrypt",)
# Postfix's default qmgr_message_active_limit, for an instance whose setting was not read.
DEFAULT_ACTIVE_LIMIT = 20000
# Deferred messages of one instance, as a share of its active queue limit, above which it is backed up.
DEFERRED_WARN_SHARE = 0.25
DEFERRED_FAIL_SHARE = 1.0
NO_OUTBOUND = "the site has no outbound: section"


@dataclass(frozen=True)
class SiteExpectations:
    """What the site file promises, for the controls that compare against it."""

    spam_add_header: float
    spam_reject: float
    # The outbound: section as the inventory hands it to the roles (see outbound_expectations); None without one.
    outbound: dict[str, list[dict[str, Any]]] | None = None
    # The archive: section as the inventory hands it to the roles (judge_archive.archive_expectations).
    archive: dict[str, Any] | None = None


def outbound_expectations(site_vars: dict[str, Any]) -> dict[str, list[dict[str, Any]]] | None:
    """The `mailappliance__outbound_*` variables the inventory writes (carriers with their nexthop, routes with
    every channel spelled out and the implied catch-all last, channels, accounts), keyed carriers, routes,
    channels and accounts; None for a site without an outbound: section. The controls compare the host with
    exactly what the roles were given."""
    if "mailappliance__outbound_carriers" not in site_vars:
        return None
    return {part: list(site_vars.get(f"mailappliance__outbound_{part}") or [])
            for part in ("carriers", "routes", "channels", "accounts")}


def settings(lines: list[str]) -> dict[str, str]:
    """`name = value` lines (postconf, doveconf) as a dict."""
    values = {}
    for line in lines:
        name, sep, value = line.partition("=")
        if sep:
            values[name.strip()] = value.strip()
    return values


def judge_host(evidence: dict[str, Any], expected_files: dict[str, str], site: SiteExpectations) -> list[Control]:
    postconf = settings(evidence.get("postconf") or [])
    doveconf = settings(evidence.get("doveconf") or [])
    now = float(evidence.get("clock") or 0)
    return [
        postfix_relay(postconf),
        postfix_tls_protocols(postconf),
        postfix_tls_ciphers(postconf),
        postfix_auth(postconf, evidence.get("postconf_services") or []),
        postfix_milter(postconf),
        postfix_smuggling(postconf),
        postfix_queue_age(evidence.get("postfix_queues") or {}, now),
        *judge_outbound(evidence, site.outbound, now),
        *judge_archive(evidence, site.archive),
        dovecot_tls(doveconf),
        dovecot_plaintext(doveconf),
        dovecot_password_scheme(evidence.get("passdb") or [], evidence.get("password_schemes") or []),
        rspamd_actions(evidence.get("rspamd_actions") or "", site),
        rspamd_dkim_bits(evidence.get("dkim_keys") or []),
        rspamd_scan_time(evidence.get("rspamd_stat") or {}),
        clamav_running(evidence.get("services") or {}),
        clamav_signatures(evidence.get("clamav_databases") or [], now),
        host_services(evidence.get("services") or {}, site.outbound),
        security_updates(evidence.get("upgrades") or [], evidence.get("apt_lists") or [], now),
        key_permissions(evidence.get("key_files") or [], evidence.get("key_files_missing") or [],
                        evidence.get("dkim_keys") or [], tls_key_file(postconf)),
        config_drift(evidence.get("files") or [], expected_files),
    ]


def _network_is_local(entry: str) -> bool | None:
    """True for loopback, False for anything else, None when it is not a network (a lookup table)."""
    text = entry.strip("[]").replace("]/", "/")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return network.is_loopback


def postfix_relay(postconf: dict[str, str]) -> Control:
    restrictions = [r.strip() for r in re.split(r"[\s,]+", postconf.get("smtpd_relay_restrictions", "")) if r.strip()]
    networks = [n for n in re.split(r"[\s,]+", postconf.get("mynetworks", "")) if n]
    evidence = (f"mynetworks = {' '.join(networks) or '(empty)'}; "
                f"smtpd_relay_restrictions = {', '.join(restrictions) or '(empty)'}")
    if "smtpd_relay_restrictions" not in postconf or "mynetworks" not in postconf:
        return cat.POSTFIX_RELAY.judge(ERROR, f"postconf did not report the settings: {evidence}")
    problems = []
    wide = [n for n in networks if _network_is_local(n) is not True]
    if wide:
        problems.append(f"mynetworks trusts more than loopback: {' '.join(wide)}")
    closes = "reject_unauth_destination" in restrictions or "defer_unauth_destination" in restrictions or (
        restrictions and restrictions[-1] == "reject")
    if not closes:
        problems.append("smtpd_relay_restrictions do not end the relay (no reject_unauth_destination or reject)")
    allowed_before = {"permit_mynetworks", "permit_sasl_authenticated", "reject_unauth_destination",
                      "defer_unauth_destination", "reject"}
    if any(r.startswith("permit") and r not in allowed_before for r in restrictions):
        problems.append("smtpd_relay_restrictions permit more than mynetworks and authenticated users")
    return cat.POSTFIX_RELAY.judge(FAIL if problems else PASS, "; ".join(problems + [evidence]))


def _legacy_allowed(value: str) -> list[str]:
    """Protocols a Postfix protocol setting still allows (">=TLSv1.2", "!SSLv2, !SSLv3" or empty forms)."""
    value = value.strip()
    minimum = re.match(r"^>=\s*(\S+)$", value)
    if minimum:
        order = (*LEGACY_PROTOCOLS, "TLSv1.2", "TLSv1.3")
        floor = minimum.group(1)
        return [p for p in LEGACY_PROTOCOLS if floor in order and order.index(p) >= order.index(floor)] \
            if floor in order else list(LEGACY_PROTOCOLS)
    excluded = {item.strip().lstrip("!") for item in re.split(r"[\s,:]+", value) if item.strip().startswith("!")}
    included = {item.strip() for item in re.split(r"[\s,:]+", value) if item.strip() and not item.startswith("!")}
    if included:
        return [p for p in LEGACY_PROTOCOLS if p in included]
    return [p for p in LEGACY_PROTOCOLS if p not in excluded]


def postfix_tls_protocols(postconf: dict[str, str]) -> Control:
    names = ("smtpd_tls_protocols", "smtpd_tls_mandatory_protocols")
    if any(name not in postconf for name in names):
        return cat.POSTFIX_TLS_PROTOCOLS.judge(ERROR, "postconf did not report the TLS protocol settings")
    evidence = "; ".join(f"{name} = {postconf[name]}" for name in names)
    legacy = sorted({p for name in names for p in _legacy_allowed(postconf[name])}, key=LEGACY_PROTOCOLS.index)
    if legacy:
        return cat.POSTFIX_TLS_PROTOCOLS.judge(FAIL, f"allows {', '.join(legacy)}: {evidence}")
    return cat.POSTFIX_TLS_PROTOCOLS.judge(PASS, evidence)


def postfix_tls_ciphers(postconf: dict[str, str]) -> Control:
    names = ("smtpd_tls_ciphers", "smtpd_tls_mandatory_ciphers")
    if any(name not in postconf for name in names):
        return cat.POSTFIX_TLS_CIPHERS.judge(ERROR, "postconf did not report the cipher settings")
    evidence = "; ".join(f"{name} = {postconf[name]}" for name in names)
    weak = [name for name in names if postconf[name] not in ("high",)]
    if any(postconf[name] in ("low", "export", "null") for name in names):
        return cat.POSTFIX_TLS_CIPHERS.judge(FAIL, evidence)
    return cat.POSTFIX_TLS_CIPHERS.judge(WARN if weak else PASS, evidence)


def service_overrides(lines: list[str]) -> dict[str, dict[str, str]]:
    """`postconf -P` lines ("service/type/parameter = value") as {"service/type": {parameter: value}}."""
    overrides: dict[str, dict[str, str]] = {}
    for line in lines:
        key, _, value = line.partition("=")
        service, _, parameter = key.strip().rpartition("/")
        overrides.setdefault(service, {})[parameter] = value.strip()
    return overrides


def postfix_auth(postconf: dict[str, str], services: list[str]) -> Control:
    overrides = service_overrides(services)
    problems = []
    if postconf.get("smtpd_sasl_auth_enable") != "no":
        problems.append(f"main.cf smtpd_sasl_auth_enable = {postconf.get('smtpd_sasl_auth_enable')} (AUTH on port 25)")
    sasl_services = [s for s, o in overrides.items() if o.get("smtpd_sasl_auth_enable") == "yes"]
    for service in sasl_services:
        options = overrides[service]
        wrapper = options.get("smtpd_tls_wrappermode") == "yes"
        tls_only = options.get("smtpd_tls_auth_only", postconf.get("smtpd_tls_auth_only")) == "yes"
        encrypt = options.get("smtpd_tls_security_level") == "encrypt"
        if not (wrapper or (tls_only and encrypt)):
            problems.append(f"{service} offers AUTH without requiring TLS first")
    evidence = (f"main.cf smtpd_sasl_auth_enable = {postconf.get('smtpd_sasl_auth_enable')}, smtpd_tls_auth_only = "
                f"{postconf.get('smtpd_tls_auth_only')}; SASL enabled in {', '.join(sasl_services) or 'no service'}")
    return cat.POSTFIX_AUTH.judge(FAIL if problems else PASS, "; ".join(problems + [evidence]))


def postfix_milter(postconf: dict[str, str]) -> Control:
    value = postconf.get("milter_default_action")
    if value is None:
        return cat.POSTFIX_MILTER_TEMPFAIL.judge(ERROR, "postconf did not report milter_default_action")
    return cat.POSTFIX_MILTER_TEMPFAIL.judge(PASS if value == "tempfail" else FAIL,
                                             f"milter_default_action = {value}")


def postfix_smuggling(postconf: dict[str, str]) -> Control:
    mode, exempt = postconf.get("smtpd_forbid_bare_newline"), postconf.get("smtpd_forbid_bare_newline_exclusions")
    if mode is None or exempt is None:
        return cat.POSTFIX_SMUGGLING.judge(ERROR, "postconf did not report smtpd_forbid_bare_newline and its exclusions")
    evidence = f"smtpd_forbid_bare_newline = {mode}; smtpd_forbid_bare_newline_exclusions = {exempt}"
    # The exclusions may name $mynetworks (judged by POSTFIX-RELAY) or loopback networks, nothing wider.
    entries = [entry for entry in re.split(r"[\s,]+", exempt) if entry]
    narrow = all(entry == "$mynetworks" or _network_is_local(entry) for entry in entries)
    ok = mode in ("normalize", "reject", "yes") and narrow
    return cat.POSTFIX_SMUGGLING.judge(PASS if ok else FAIL, evidence)


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _queue_lines(queues: dict[str, Any], now: float) -> tuple[dict[str, tuple[int, float]], list[str], list[str]]:
    """Each queue's message count and age of its oldest message, with the POSTFIX-QUEUE-AGE verdict of each."""
    found: dict[str, tuple[int, float]] = {}
    for line in queues.get("summary") or []:
        name, count, oldest = line.split()
        found[name] = int(count), max(now - float(oldest), 0)
    seen, statuses = [], [PASS]
    for name, (warn, fail) in QUEUE_AGE_LIMITS.items():
        if name not in found:
            seen.append(_queue_text(name, found))
            continue
        age = found[name][1]
        status = FAIL if fail is not None and age > fail else WARN if age > warn else PASS
        statuses.append(status)
        seen.append(_queue_text(name, found) + ("" if status == PASS else f" ({status})"))
    return found, seen, statuses


def _queue_text(name: str, found: dict[str, tuple[int, float]]) -> str:
    if name not in found:
        return f"{name}: empty"
    count, age = found[name]
    return f"{name}: {count} message{'s' if count != 1 else ''}, oldest {_age(age)}"


def postfix_queue_age(queues: dict[str, Any], now: float) -> Control:
    """`queues`: postqueue -j summed up on the host ("QUEUE COUNT OLDEST_ARRIVAL" lines), or why that failed."""
    if queues.get("rc") != 0:
        return cat.POSTFIX_QUEUE_AGE.judge(ERROR, f"postqueue -j failed (exit {queues.get('rc', '?')}): "
                                                  f"{str(queues.get('error') or '')[:200]}")
    _, seen, statuses = _queue_lines(queues, now)
    return cat.POSTFIX_QUEUE_AGE.judge(worst(statuses), "; ".join(seen))


@dataclass(frozen=True)
class _Instance:
    """One Postfix instance as the outbound reader of playbooks/audit.yml saw it."""

    name: str
    settings: dict[str, str]
    services: dict[str, dict[str, str]]
    tls_policy: dict[str, str]
    transports: dict[str, int]
    queues: dict[str, Any]
    errors: tuple[str, ...]

    @classmethod
    def read(cls, data: dict[str, Any], name: str) -> _Instance:
        return cls(name=name, settings=settings(data.get("postconf") or []),
                   services=service_overrides(data.get("services") or []),
                   tls_policy={str(k).lower(): str(v) for k, v in (data.get("tls_policy") or {}).items()},
                   transports={str(k): int(v) for k, v in (data.get("transports") or {}).items()},
                   queues=data.get("queues") or {}, errors=tuple(data.get("errors") or ()))

    def setting(self, service: str, name: str) -> str:
        """A parameter as one master.cf service sees it: its -o override, else main.cf's value."""
        return self.services.get(service, {}).get(name, self.settings.get(name, ""))

    def fallbacks(self, transport: str) -> list[str]:
        value = self.services.get(f"{transport}/unix", {}).get("smtp_fallback_relay",
                                                               self.settings.get("smtp_fallback_relay", ""))
        return [relay.lower() for relay in re.split(r"[\s,]+", value) if relay]


@dataclass(frozen=True)
class _Outbound:
    """The outbound evidence of one host: its staff instance and each dedicated channel's, by channel name."""

    staff: _Instance
    channels: dict[str, _Instance]
    accounts: dict[str, Any]

    @classmethod
    def read(cls, data: dict[str, Any]) -> _Outbound:
        instances = {}
        for instance in data.get("instances") or []:
            name = str(instance.get("name") or "")
            instances[name] = _Instance.read(instance, name)
        # A channel is its instance, named by the postfix role's rule; other instances are not the site's.
        prefix = CHANNEL_INSTANCE.format("")
        return cls(staff=_Instance.read(data.get("staff") or {}, "postfix"),
                   channels={name.removeprefix(prefix): instance for name, instance in instances.items()
                             if name.startswith(prefix)},
                   accounts=data.get("accounts") or {})

    def instance(self, channel: str) -> _Instance | None:
        return self.staff if channel == STAFF_CHANNEL else self.channels.get(channel)


def _instance_label(channel: str) -> str:
    return "postfix (staff)" if channel == STAFF_CHANNEL else CHANNEL_INSTANCE.format(channel)


def _missing(channel: str) -> str:
    return (f"fail: {_instance_label(channel)}: no such Postfix instance on the host (not in the staff instance's "
            "multi_instance_directories)")


def _read_errors(instance: _Instance, channel: str) -> list[str]:
    """What the reader could not read of an instance: the control could not be checked there."""
    return [f"error: {_instance_label(channel)}: {error}" for error in instance.errors]


def _lines_status(lines: list[str]) -> str:
    return worst([line.split(":", 1)[0] for line in lines] or [NOT_APPLICABLE])


def _domains(route: dict[str, Any]) -> str:
    domains = list(route.get("domains") or [])
    shown = ", ".join(domains[:3])
    return shown + (f" and {len(domains) - 3} more" if len(domains) > 3 else "")


def judge_outbound(evidence: dict[str, Any], site: dict[str, list[dict[str, Any]]] | None,
                   now: float) -> list[Control]:
    """The outbound controls: not-applicable without an outbound: section, errors when the reader failed."""
    specs = (cat.OUTBOUND_RELAY_TLS, cat.OUTBOUND_ROUTE_FALLBACK, cat.OUTBOUND_ACCOUNT_LIMITS,
             cat.OUTBOUND_CHANNEL_QUEUES)
    if site is None:
        return [spec.judge(NOT_APPLICABLE, NO_OUTBOUND) for spec in specs]
    data = evidence.get("outbound")
    if not isinstance(data, dict) or data.get("error") or "staff" not in data:
        reason = data.get("error") if isinstance(data, dict) and data.get("error") else "no outbound evidence"
        return [spec.judge(ERROR, f"the host's outbound setup could not be read: {str(reason)[:300]}")
                for spec in specs]
    host = _Outbound.read(data)
    return [outbound_relay_tls(host, site), outbound_route_fallback(host, site), outbound_account_limits(host, site),
            outbound_channel_queues(host, site, evidence.get("postfix_queues") or {}, now)]


def _channels(site: dict[str, list[dict[str, Any]]]) -> list[str]:
    return [STAFF_CHANNEL] + [str(channel["name"]) for channel in site["channels"]]


def outbound_relay_tls(host: _Outbound, site: dict[str, list[dict[str, Any]]]) -> Control:
    """Every relay a channel's routes use, in that channel's instance: the TLS level its policy table gives the
    relay's next hop, against what the site asks (tls: verify or encrypt)."""
    carriers = {str(c["name"]): c for c in site["carriers"]}
    lines: list[str] = []
    for channel in _channels(site):
        used = [carriers[name] for route in site["routes"] if channel in route["channels"]
                for name in route["carriers"] if name in carriers and carriers[name]["type"] == "relay"]
        relays = list({str(c["name"]): c for c in used}.values())
        if not relays:
            continue
        instance = host.instance(channel)
        if instance is None:
            lines.append(_missing(channel))
            continue
        label = _instance_label(channel)
        lines += _read_errors(instance, channel)
        maps = instance.settings.get("smtp_tls_policy_maps", "")
        # A transport of its own policy table would escape the one judged here. One that only adds tables after it
        # (a direct route's MTA-STS resolver) still has every relay answered by it: Postfix takes the first answer.
        for service, options in sorted(instance.services.items()):
            if "smtp_tls_policy_maps" in options and not _keeps_maps_first(options["smtp_tls_policy_maps"], maps):
                lines.append(f"fail: {label}: {service} overrides smtp_tls_policy_maps "
                             f"({options['smtp_tls_policy_maps'] or 'empty'}), so its relays are not held to {maps}")
        for carrier in relays:
            nexthop, wanted = str(carrier["nexthop"]), str(carrier["tls"])
            level = instance.tls_policy.get(nexthop.lower())
            what = f"{label}: {carrier['name']} {nexthop}"
            if level is None:
                fallback = instance.settings.get("smtp_tls_security_level", "?")
                lines.append(f"fail: {what} is not in the TLS policy table ({maps or 'smtp_tls_policy_maps is empty'}),"
                             f" so smtp_tls_security_level = {fallback} applies")
            elif level in VERIFIED_TLS_LEVELS:
                lines.append(f"pass: {what}: {level}")
            elif level in UNVERIFIED_TLS_LEVELS and wanted != "verify":
                lines.append(f"warn: {what}: {level} (TLS required, the relay's certificate not checked)")
            elif level in UNVERIFIED_TLS_LEVELS:
                lines.append(f"fail: {what}: {level} where the site asks {wanted}")
            else:
                lines.append(f"fail: {what}: {level or 'empty'} (TLS not required)")
    if not lines:
        return cat.OUTBOUND_RELAY_TLS.judge(NOT_APPLICABLE, "no route sends through a relay carrier")
    return cat.OUTBOUND_RELAY_TLS.judge(_lines_status(lines), "\n".join(lines))


def _keeps_maps_first(override: str, maps: str) -> bool:
    """Whether a transport's smtp_tls_policy_maps asks the instance's tables first, in their order."""
    own = [name for name in re.split(r"[\s,]+", maps) if name]
    theirs = [name for name in re.split(r"[\s,]+", override) if name]
    return theirs[:len(own)] == own if own else not theirs


def outbound_route_fallback(host: _Outbound, site: dict[str, list[dict[str, Any]]]) -> Control:
    """Each route of a dedicated channel: its carriers in the site, and whether the channel's instance has a
    transport that sends to the primary with the others as smtp_fallback_relay, in order."""
    carriers = {str(c["name"]): c for c in site["carriers"]}
    lines: list[str] = []
    for channel in _channels(site)[1:]:
        instance = host.instance(channel)
        if instance is None:
            lines.append(_missing(channel))
            continue
        label = _instance_label(channel)
        lines += _read_errors(instance, channel)
        # What the transport table sends to: transport:nexthop, and the transport's fallback relays.
        chains = {}
        for value in instance.transports:
            transport, _, nexthop = value.partition(":")
            chains[value] = [nexthop.lower(), *instance.fallbacks(transport)]
        for route in site["routes"]:
            if channel not in route["channels"]:
                continue
            names = [str(name) for name in route["carriers"]]
            wanted = [str(carriers[name]["nexthop"]).lower() if name in carriers else "?" for name in names]
            what = f"{label}: {_domains(route)} via {', then '.join(names)}"
            found = next((value for value, chain in chains.items() if chain == wanted), None)
            if found is None:
                seen = [f"{value} (fallback {', '.join(chain[1:]) or 'none'})" for value, chain in chains.items()
                        if chain[0] == wanted[0]]
                lines.append(f"fail: {what}: no transport of the transport table sends to {wanted[0] or 'the MX'} "
                             f"with fallback {', '.join(wanted[1:]) or 'none'}; to that next hop the host has "
                             f"{'; '.join(seen) or 'nothing'}")
            elif len(names) == 1:
                lines.append(f"warn: {what} only: no fallback carrier ({found})")
            else:
                lines.append(f"pass: {what} ({found.partition(':')[0]} with smtp_fallback_relay "
                             f"{', '.join(wanted[1:])})")
    if not lines:
        return cat.OUTBOUND_ROUTE_FALLBACK.judge(NOT_APPLICABLE, "the site has no dedicated channel")
    return cat.OUTBOUND_ROUTE_FALLBACK.judge(_lines_status(lines), "\n".join(lines))


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def outbound_account_limits(host: _Outbound, site: dict[str, list[dict[str, Any]]]) -> Control:
    """Every account of the site in the policy service's accounts file with the site's channel and limits, the
    service's socket active, and each channel with accounts asking it at the end of every message."""
    if not site["accounts"]:
        return cat.OUTBOUND_ACCOUNT_LIMITS.judge(NOT_APPLICABLE, "the site has no sending accounts")
    policy = host.accounts
    unit, path = policy.get("unit") or "the policy service", policy.get("file") or ""
    deployed = policy.get("accounts")
    lines: list[str] = []
    if not isinstance(deployed, dict):
        lines.append(f"fail: the accounts file of {unit} could not be read, so no account's limits are known: "
                     f"{policy.get('error') or 'no evidence'}")
    for account in site["accounts"] if isinstance(deployed, dict) else []:
        name, want = str(account["name"]), (account["channel"], account["daily_quota"], account["rate_per_minute"])
        entry = deployed.get(name)
        if not isinstance(entry, dict):
            lines.append(f"fail: {name} ({want[0]}): not in {path}, so nothing limits it")
            continue
        have = (entry.get("channel"), entry.get("daily_quota"), entry.get("rate_per_minute"))
        shown = f"{name} ({have[0]}): daily quota {have[1]}, {have[2]} a minute"
        if not (_positive(have[1]) and _positive(have[2])):
            lines.append(f"fail: {shown}: a limit is missing or not a positive number")
        elif have != want:
            lines.append(f"fail: {shown}; the site has {want[0]}, daily quota {want[1]}, {want[2]} a minute")
        else:
            lines.append(f"pass: {shown}")
    known = {str(account["name"]) for account in site["accounts"]}
    stale = sorted(str(name) for name in (deployed if isinstance(deployed, dict) else {}) if name not in known)
    if stale:
        lines.append(f"warn: {path} also lists {', '.join(stale)}, accounts the site does not have")
    socket = policy.get("socket") or "unknown"
    lines.append(f"{'pass' if socket == 'active' else 'fail'}: {unit}.socket is {socket}"
                 + ("" if socket == "active" else ": no message of an account can be counted, so each is deferred"))
    channels = {str(c["name"]): c for c in site["channels"]}
    for channel in sorted({str(account["channel"]) for account in site["accounts"]}):
        instance = host.instance(channel)
        if instance is None:
            lines.append(_missing(channel))
            continue
        lines += _read_errors(instance, channel)
        listener = f"{channels[channel]['submission_port']}/inet" if channel in channels else "?"
        restrictions = instance.setting(listener, "smtpd_end_of_data_restrictions")
        asks = "check_policy_service" in restrictions
        lines.append(f"{'pass' if asks else 'fail'}: {_instance_label(channel)} {listener}: "
                     f"smtpd_end_of_data_restrictions = {restrictions or '(empty)'}"
                     + ("" if asks else ", so its accounts send without limits"))
    return cat.OUTBOUND_ACCOUNT_LIMITS.judge(_lines_status(lines), "\n".join(lines))


def _active_limit(instance: _Instance | None) -> int:
    try:
        return int((instance.settings if instance else {}).get("qmgr_message_active_limit", ""))
    except ValueError:
        return DEFAULT_ACTIVE_LIMIT


def _deferred_limits(found: dict[str, tuple[int, float]], limit: int) -> tuple[str, str]:
    """The verdict on the number of deferred messages, and the limits it was judged by."""
    count = found.get("deferred", (0, 0.0))[0]
    warn, fail = int(limit * DEFERRED_WARN_SHARE), int(limit * DEFERRED_FAIL_SHARE)
    status = FAIL if count > fail else WARN if count > warn else PASS
    text = f"deferred count: warn over {warn}, fail over {fail}" + ("" if status == PASS else f" ({status})")
    return status, text


def outbound_channel_queues(host: _Outbound, site: dict[str, list[dict[str, Any]]], staff_queues: dict[str, Any],
                            now: float) -> Control:
    """Deferred messages of every instance against its active queue limit; a dedicated channel's queue ages."""
    lines: list[str] = []
    for channel in _channels(site):
        label = _instance_label(channel)
        instance = host.instance(channel)
        if instance is None:
            lines.append(_missing(channel))
            continue
        queues = staff_queues if channel == STAFF_CHANNEL else instance.queues
        if queues.get("rc") != 0:
            lines.append(f"error: {label}: postqueue -j failed (exit {queues.get('rc', '?')}): "
                         f"{str(queues.get('error') or '')[:200]}")
            continue
        found, seen, statuses = _queue_lines(queues, now)
        status, limits = _deferred_limits(found, _active_limit(instance))
        if channel == STAFF_CHANNEL:
            # The staff queues' ages are POSTFIX-QUEUE-AGE's; judged here too, one stuck message would fail both.
            lines.append(f"{status}: {label}: {_queue_text('deferred', found)} (ages: POSTFIX-QUEUE-AGE); {limits}")
        else:
            lines.append(f"{worst([status, *statuses])}: {label}: {'; '.join(seen)}; {limits}")
    return cat.OUTBOUND_CHANNEL_QUEUES.judge(_lines_status(lines), "\n".join(lines))


def dovecot_tls(doveconf: dict[str, str]) -> Control:
    ssl, minimum = doveconf.get("ssl"), doveconf.get("ssl_min_protocol")
    if ssl is None or minimum is None:
        return cat.DOVECOT_TLS.judge(ERROR, "doveconf did not report ssl and ssl_min_protocol")
    evidence = f"ssl = {ssl}; ssl_min_protocol = {minimum}"
    ok = ssl == "required" and minimum in ("TLSv1.2", "TLSv1.3")
    return cat.DOVECOT_TLS.judge(PASS if ok else FAIL, evidence)


def dovecot_plaintext(doveconf: dict[str, str]) -> Control:
    value = doveconf.get("disable_plaintext_auth")
    if value is None:
        return cat.DOVECOT_PLAINTEXT.judge(ERROR, "doveconf did not report disable_plaintext_auth")
    evidence = f"disable_plaintext_auth = {value}; auth_mechanisms = {doveconf.get('auth_mechanisms', '?')}"
    return cat.DOVECOT_PLAINTEXT.judge(PASS if value == "yes" else FAIL, evidence)


def dovecot_password_scheme(passdb: list[str], schemes: list[str]) -> Control:
    args = next((line.split("=", 1)[1].strip() for line in passdb if line.strip().startswith("args")), "")
    default = re.search(r"scheme=(\S+)", args)
    counts: dict[str, int] = {}
    for scheme in schemes:
        counts[scheme.upper()] = counts.get(scheme.upper(), 0) + 1
    seen = ", ".join(f"{count} x {scheme}" for scheme, count in sorted(counts.items())) or "no entries"
    evidence = f"passdb default scheme {default.group(1) if default else 'none'}; users file: {seen}"
    weak = [s for s in counts if s not in STRONG_SCHEMES]
    if weak:
        return cat.DOVECOT_PASSWORD_SCHEME.judge(FAIL, f"weak or missing schemes {', '.join(weak)}: {evidence}")
    if not counts:
        return cat.DOVECOT_PASSWORD_SCHEME.judge(NOT_APPLICABLE, evidence)
    return cat.DOVECOT_PASSWORD_SCHEME.judge(PASS, evidence)


def rspamd_actions(dump: str, site: SiteExpectations) -> Control:
    try:
        actions = json.loads(dump) if dump else {}
    except ValueError:
        return cat.RSPAMD_ACTIONS.judge(ERROR, f"unreadable rspamadm output: {dump[:200]!r}")
    reject, add_header = actions.get("reject"), actions.get("add_header")
    evidence = (f"reject = {reject}, add_header = {add_header} "
                f"(site: reject {site.spam_reject:g}, add_header {site.spam_add_header:g})")
    if reject is None:
        return cat.RSPAMD_ACTIONS.judge(FAIL, f"no reject threshold: {evidence}")
    ok = float(reject) == site.spam_reject and add_header is not None and float(add_header) == site.spam_add_header
    return cat.RSPAMD_ACTIONS.judge(PASS if ok else FAIL, evidence)


def rspamd_dkim_bits(keys: list[Any]) -> Control:
    if not keys:
        return cat.RSPAMD_DKIM_BITS.judge(FAIL, "no DKIM key found in /var/lib/rspamd/dkim")
    seen, weak = [], []
    for info, text in keys:
        bits = re.search(r"\((\d+) bit", text or "")
        name = info["path"].rsplit("/", 1)[-1]
        if "ED25519" in (text or "").upper():
            seen.append(f"{name}: Ed25519")
            continue
        if not bits:
            weak.append(name)
            seen.append(f"{name}: unreadable ({text!r})")
            continue
        seen.append(f"{name}: RSA {bits.group(1)} bits")
        if int(bits.group(1)) < 2048:
            weak.append(name)
    return cat.RSPAMD_DKIM_BITS.judge(FAIL if weak else PASS, "; ".join(seen))


def percentile(values: list[float], percent: int) -> float:
    """Nearest-rank percentile: the smallest value at least `percent` % of the values do not exceed."""
    ordered = sorted(values)
    return ordered[max(math.ceil(percent / 100 * len(ordered)) - 1, 0)]


def rspamd_scan_time(stat: dict[str, Any]) -> Control:
    """`stat` holds what Rspamd's controller answered to GET /stat: its HTTP status and the scan time ring."""
    if stat.get("status") != 200:
        return cat.RSPAMD_SCAN_TIME.judge(ERROR, f"Rspamd's controller did not answer /stat (HTTP "
                                                 f"{stat.get('status', '?')}): {str(stat.get('msg') or '')[:200]}")
    # The ring has a slot for each of the last 31 scans; slots no scan has filled yet are null.
    times = [float(t) for t in stat.get("scan_times") or [] if t is not None]
    # Rspamd keeps its message count across restarts, the ring only in memory.
    since = f"Rspamd up {_age(float(stat.get('uptime') or 0))}, {stat.get('scanned')} messages scanned in all"
    if not times:
        # Every deploy that changes Rspamd's configuration restarts it: an empty ring is no finding.
        return cat.RSPAMD_SCAN_TIME.judge(PASS, f"no scan since Rspamd started ({since})")
    p50, p90, p99 = (percentile(times, percent) for percent in SCAN_TIME_PERCENTILES)
    status = FAIL if p90 > SCAN_TIME_FAIL_SECONDS else WARN if p90 > SCAN_TIME_WARN_SECONDS else PASS
    return cat.RSPAMD_SCAN_TIME.judge(status, f"p50 {p50:.3f} s, p90 {p90:.3f} s, p99 {p99:.3f} s over "
                                              f"{len(times)} recent scan{'s' if len(times) != 1 else ''} ({since})")


def _service(services: dict[str, Any], name: str) -> tuple[str, str]:
    info = services.get(name) or {}
    return str(info.get("state", "missing")), str(info.get("status", "missing"))


def clamav_running(services: dict[str, Any]) -> Control:
    state, status = _service(services, "clamav-daemon.service")
    return cat.CLAMAV_RUNNING.judge(PASS if state == "running" else FAIL,
                                    f"clamav-daemon.service: {state}, {status}")


def clamav_signatures(databases: list[dict[str, Any]], now: float) -> Control:
    if not databases:
        return cat.CLAMAV_SIGNATURES.judge(FAIL, "no signature database in /var/lib/clamav")
    newest = max(databases, key=lambda d: d["mtime"])
    days = (now - float(newest["mtime"])) / 86400
    names = ", ".join(d["path"].rsplit("/", 1)[-1] for d in databases)
    evidence = f"newest database {newest['path']} is {days:.1f} days old; databases: {names}"
    status = FAIL if days > SIGNATURES_FAIL_DAYS else WARN if days > SIGNATURES_WARN_DAYS else PASS
    return cat.CLAMAV_SIGNATURES.judge(status, evidence)


def host_services(services: dict[str, Any], outbound: dict[str, list[dict[str, Any]]] | None = None) -> Control:
    """The appliance's services, and each dedicated channel's Postfix instance (postfix@postfix-<channel>)."""
    channels = [f"postfix@postfix-{channel['name']}.service" for channel in (outbound or {}).get("channels", [])]
    seen, bad = [], []
    for name in (*SERVICES, *channels):
        state, status = _service(services, name)
        seen.append(f"{name}: {state}, {status}")
        # postfix@- and the channels' instances are instances of a template unit, started through postfix.service,
        # so they show "active" rather than "enabled".
        if state != "running" or status not in ("enabled", "active", "static", "alias"):
            bad.append(name)
    evidence = "; ".join(seen)
    return cat.HOST_SERVICES.judge(FAIL if bad else PASS, f"not running or not enabled: {', '.join(bad)}; {evidence}"
                                   if bad else evidence)


def security_updates(upgrades: list[str], lists: list[dict[str, Any]], now: float) -> Control:
    pending = [line.split()[1] for line in upgrades if re.search(r"-security\b", line, re.IGNORECASE)]
    has_security_source = any("security" in entry["path"] for entry in lists)
    age = (now - max(float(entry["mtime"]) for entry in lists)) / 86400 if lists else None
    freshness = f"package lists {age:.1f} days old" if age is not None else "no package lists"
    if pending:
        return cat.HOST_SECURITY_UPDATES.judge(
            FAIL, f"{len(pending)} pending: {', '.join(pending)} ({freshness})")
    if not has_security_source:
        return cat.HOST_SECURITY_UPDATES.judge(WARN, f"no security source among the package lists ({freshness})")
    return cat.HOST_SECURITY_UPDATES.judge(PASS, f"none pending according to the host's {freshness}")


def tls_key_file(postconf: dict[str, str]) -> str | None:
    """The private key Postfix loads: smtpd_tls_chain_files lists each key before its certificate chain."""
    files = postconf.get("smtpd_tls_chain_files", "").replace(",", " ").split()
    return files[0] if files else None


def key_permissions(stat_lines: list[str], missing: list[str], dkim_keys: list[Any], tls_key: str | None) -> Control:
    seen, bad = [], []
    found: dict[str, tuple[str, str, str]] = {}
    for line in stat_lines:
        parts = line.split("\t")
        if len(parts) == 4:
            found[parts[0]] = (parts[1], parts[2], parts[3].zfill(4))
    if tls_key is None:
        bad.append("Postfix names no TLS key (smtpd_tls_chain_files is empty)")
    expected = dict(KEY_FILES, **({tls_key: TLS_KEY_OWNER} if tls_key else {}))
    for path, want in expected.items():
        have = found.get(path)
        if have is None:
            bad.append(f"{path} missing")
            continue
        seen.append(f"{path} {have[0]}:{have[1]} {have[2]}")
        if have != want:
            bad.append(f"{path} is {have[0]}:{have[1]} {have[2]}, expected {want[0]}:{want[1]} {want[2]}")
    for info, _ in dkim_keys:
        have = (info.get("pw_name"), info.get("gr_name"), str(info.get("mode")).zfill(4))
        seen.append(f"{info['path']} {have[0]}:{have[1]} {have[2]}")
        if have != DKIM_KEY_OWNER:
            bad.append(f"{info['path']} is {have[0]}:{have[1]} {have[2]}, expected _rspamd:_rspamd 0640")
    evidence = "; ".join(bad + seen) + ("; " + "; ".join(missing) if missing else "")
    return cat.HOST_KEY_PERMISSIONS.judge(FAIL if bad else PASS, evidence)


def config_drift(sum_lines: list[str], expected: dict[str, str]) -> Control:
    if not expected:
        return cat.CONFIG_DRIFT.judge(ERROR, "the offline preview holds no files to compare with")
    deployed = {}
    for line in sum_lines:
        digest, _, path = line.partition("  ")
        deployed[path] = digest
    missing = sorted(path for path in expected if path not in deployed)
    changed = sorted(path for path in expected if path in deployed and deployed[path] != expected[path])
    problems = [f"differs from the preview: {path} (deployed sha256 {deployed[path][:16]}..., preview "
                f"{expected[path][:16]}...)" for path in changed] + [f"missing: {path}" for path in missing]
    if problems:
        return cat.CONFIG_DRIFT.judge(FAIL, "; ".join(problems) + f"; {len(expected)} files compared")
    return cat.CONFIG_DRIFT.judge(PASS, f"all {len(expected)} files match the preview by SHA-256")
