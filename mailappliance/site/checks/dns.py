"""Checks of the DNS section: what `mailappliance dns` publishes (TTL, DMARC and MTA-STS policies, report
addresses, the appliance's public addresses)."""

from __future__ import annotations

import ipaddress
from typing import Any

from mailappliance.site.checks.addresses import is_defined, receiving_addresses
from mailappliance.site.checks.base import Checker, join
from mailappliance.site.model import (
    DEFAULT_DMARC_POLICY,
    DEFAULT_DNS_TTL,
    DEFAULT_MTA_STS_MAX_AGE,
    DEFAULT_MTA_STS_MODE,
    DMARC_POLICIES,
    DNS_TTL_RANGE,
    MTA_STS_MAX_AGE_RANGE,
    MTA_STS_MODES,
    Alias,
    Dns,
    Host,
    Mailbox,
)
from mailappliance.site.values import MAX_ADDRESS_LENGTH, MAX_SHORT_TEXT_LENGTH, is_email_address, show_value

_DNS_KEYS = ("ttl", "dmarc_policy", "dmarc_rua", "tlsrpt_rua", "mta_sts_mode", "mta_sts_max_age", "ipv4", "ipv6",
             "resolvers", "dnssec_validation", "air_gapped")
MAX_RESOLVERS = 8


def check_dns(checker: Checker, top: dict[str, Any], host: Host | None, admin_contact: str | None, domains: list[str],
              mailboxes: list[Mailbox], aliases: list[Alias]) -> Dns | None:
    raw = top.get("dns")
    data: dict[str, Any] | None = {}
    if raw is not None:
        data = checker.mapping(raw, "dns", _DNS_KEYS, "dns: {dmarc_policy: reject, ipv4: 192.0.2.10}")
    if data is None:
        return None
    ok = True
    ttl = checker.whole_number(data, "ttl", "dns", DEFAULT_DNS_TTL, DNS_TTL_RANGE, "a whole number of seconds")
    max_age = checker.whole_number(data, "mta_sts_max_age", "dns", DEFAULT_MTA_STS_MAX_AGE, MTA_STS_MAX_AGE_RANGE,
                                   "a whole number of seconds (RFC 8461 allows at most a year)")
    policy = data.get("dmarc_policy", DEFAULT_DMARC_POLICY)
    if policy == "none":
        checker.error("dns.dmarc_policy", '"none" only asks for reports and lets receivers deliver mail forged '
                      "in the site's domains", "use quarantine or reject")
        ok = False
    elif policy not in DMARC_POLICIES:
        checker.error("dns.dmarc_policy", f"{show_value(policy)} is not a DMARC policy", "use quarantine or reject")
        ok = False
    mode = data.get("mta_sts_mode", DEFAULT_MTA_STS_MODE)
    if mode == "none":
        checker.error("dns.mta_sts_mode", '"none" withdraws the MTA-STS policy, so senders stop requiring TLS',
                      "use enforce, or testing while TLS-RPT reports are reviewed")
        ok = False
    elif mode not in MTA_STS_MODES:
        checker.error("dns.mta_sts_mode", f"{show_value(mode)} is not an MTA-STS mode", "use enforce or testing")
        ok = False
    reports: dict[str, str | None] = {}
    for key in ("dmarc_rua", "tlsrpt_rua"):
        reports[key] = _report_address(checker, data, key, admin_contact, domains, mailboxes, aliases)
    addresses: dict[int, str | None] = {}
    for version in (4, 6):
        addresses[version] = _public_address(checker, data, version, host)
    resolvers = _resolvers(checker, data.get("resolvers"))
    switches: dict[str, bool | None] = {}
    for key, default, meaning in (
            ("dnssec_validation", True, "true (answers must prove themselves with DNSSEC where the zone is signed) or "
                                        "false (the resolvers strip DNSSEC records)"),
            ("air_gapped", False, "true (no query leaves for the internet: only the listed resolvers are asked, and "
                                  "without any every name outside the appliance is answered \"does not exist\") "
                                  "or false")):
        value = data.get(key, default)
        switches[key] = value if isinstance(value, bool) else None
        if switches[key] is None:
            checker.error(f"dns.{key}", f"{show_value(value)} is not true or false", f"use {meaning}")
    if (not ok or ttl is None or max_age is None or None in reports.values() or None in addresses.values()
            or resolvers is None or None in switches.values()):
        return None
    return Dns(ttl=ttl, dmarc_policy=policy, dmarc_rua=reports["dmarc_rua"] or "",
               tlsrpt_rua=reports["tlsrpt_rua"] or "", mta_sts_mode=mode, mta_sts_max_age=max_age,
               ipv4=addresses[4] or "", ipv6=addresses[6] or "", resolvers=resolvers,
               dnssec_validation=bool(switches["dnssec_validation"]), air_gapped=bool(switches["air_gapped"]))


def _resolvers(checker: Checker, value: Any) -> tuple[str, ...] | None:
    """The resolvers Unbound forwards to: IP addresses, each once, at most MAX_RESOLVERS."""
    fix = "list the IP addresses of your resolvers, e.g. [192.0.2.53, 2001:db8::53], or leave dns.resolvers out"
    found: list[str] = []

    def parse(where: str, item: Any) -> str | None:
        text = checker.ip_text(item, where, fix, "an IP address")
        if text is None:
            return None
        try:
            address = ipaddress.ip_address(text) if text else None
        except ValueError:
            address = None
        if address is None:
            checker.error(where, f"{show_value(item)} is not an IP address", fix)
            return None
        if address.is_loopback or address.is_unspecified or address.is_multicast:
            checker.error(where, f"{address} is not a resolver the appliance can forward to (its own Unbound "
                                 "listens on loopback)", fix)
            return None
        if str(address) in found:
            checker.error(where, f"{address} is listed twice", "list each resolver once")
            return None
        found.append(str(address))
        return str(address)

    return checker.ip_list(value, "dns.resolvers", fix, (MAX_RESOLVERS, "resolvers", f"list at most {MAX_RESOLVERS}"),
                           parse)


def _report_address(checker: Checker, data: dict[str, Any], key: str, admin_contact: str | None, domains: list[str],
                    mailboxes: list[Mailbox], aliases: list[Alias]) -> str | None:
    """A report address (mailto: optional); admin_contact when absent, "" while admin_contact is invalid."""
    where = join("dns", key)
    value = data.get(key)
    if value is None:
        return admin_contact or ""
    fix = "give the address that receives the reports, e.g. dmarc-reports@example.com"
    text = checker.string(value, where, fix, MAX_ADDRESS_LENGTH + len("mailto:")) if isinstance(value, str) else ""
    if text is None:
        return None
    address = text.lower().removeprefix("mailto:")
    if not is_email_address(address):
        checker.error(where, f"{show_value(value)} is not a valid email address", fix)
        return None
    # Reports to a hosted address nobody receives would bounce at the appliance itself.
    defined = is_defined(address, receiving_addresses(mailboxes, aliases), implicit=True)
    if address.rpartition("@")[2] in domains and not defined:
        checker.error(where, f"{show_value(value)} is in a declared domain but is neither a mailbox nor an alias",
                      "add that mailbox or alias, or use another address")
        return None
    return address


def _public_address(checker: Checker, data: dict[str, Any], version: int, host: Host | None) -> str | None:
    """The appliance's public IPv4 or IPv6 address: dns.ipv4/ipv6, else host.address if it is one, else ""."""
    key = f"ipv{version}"
    where = join("dns", key)
    value = data.get(key)
    if value is None:
        if host is None or host.connection != "ssh":
            return ""
        try:
            address = ipaddress.ip_address(host.address)
        except ValueError:
            return ""
        return str(address) if address.version == version and _is_public_candidate(address) else ""
    example = "192.0.2.10" if version == 4 else "2001:db8::10"
    fix = f"give the address the internet reaches the appliance at, e.g. {key}: {example}"
    text = checker.string(value, where, fix, MAX_SHORT_TEXT_LENGTH) if isinstance(value, str) else ""
    if text is None:
        return None
    try:
        address = ipaddress.ip_address(text) if text and "%" not in text else None
    except ValueError:
        address = None
    if address is None or address.version != version:
        checker.error(where, f"{show_value(value)} is not an IPv{version} address", fix)
        return None
    if not _is_public_candidate(address):
        checker.error(where, f"{show_value(value)} is a loopback, link-local, multicast or unspecified address", fix)
        return None
    return str(address)


def _is_public_candidate(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address could be where others reach the appliance (private networks included)."""
    return not (address.is_loopback or address.is_link_local or address.is_multicast or address.is_unspecified)
