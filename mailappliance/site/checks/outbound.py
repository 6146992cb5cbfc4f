"""Checks of the outbound section: the carriers mail leaves through, the routes that choose them by recipient domain
and channel, the dedicated channels (a Postfix instance each) and the sending accounts bound to them."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailappliance.errors import is_unsafe_char
from mailappliance.site.checks.base import Checker, join, key_name
from mailappliance.site.model import (
    APPLIANCE_PORTS,
    CARRIER_TYPES,
    CATCH_ALL_DOMAINS,
    CHANNEL_PROCESS_LIMIT_RANGE,
    CONCURRENCY_PER_DESTINATION_RANGE,
    DAILY_QUOTA_RANGE,
    DEFAULT_CHANNEL_PROCESS_LIMIT,
    DEFAULT_CONCURRENCY_PER_DESTINATION,
    DEFAULT_RELAY_PORT,
    DEFAULT_RELAY_TLS,
    DIRECT_CARRIER,
    MAX_ACCOUNTS,
    MAX_CARRIERS,
    MAX_CHANNELS,
    MAX_DOMAIN_LIST_BYTES,
    MAX_ROUTE_CARRIERS,
    MAX_ROUTES,
    MAX_SENDERS,
    MAX_SPF_MECHANISMS,
    IMPLICIT_TLS_PORT,
    MESSAGES_PER_MINUTE_RANGE,
    RATE_PER_MINUTE_RANGE,
    RELAY_TLS_MODES,
    STAFF_CHANNEL,
    SUBMISSION_PORT_RANGE,
    Account,
    Carrier,
    CarrierLimits,
    Channel,
    Dns,
    Domain,
    Host,
    Outbound,
    Route,
)
from mailappliance.site.values import (
    LABEL_RE,
    MAX_ADDRESS_LENGTH,
    MAX_DOMAIN_LENGTH,
    MAX_PATH_LENGTH,
    MAX_SHORT_TEXT_LENGTH,
    OUTBOUND_NAME_RE,
    RELAY_USERNAME_RE,
    describe_char,
    is_domain_name,
    is_domain_wildcard,
    is_email_address,
    is_record_name,
    show_value,
)
from mailappliance.site.spf import SPF_MAX_LOOKUPS, lookup_count, spf_mechanisms, spf_senders

_OUTBOUND_KEYS = ("carriers", "routes", "channels", "accounts")
_CARRIER_KEYS = ("type", "host", "port", "tls", "username", "spf", "source_address", "helo_name", "limits",
                 "mta_sts")
_RELAY_ONLY_KEYS = ("host", "port", "tls", "username", "spf")
_LIMIT_KEYS = ("concurrency_per_destination", "messages_per_minute")
_ROUTE_KEYS = ("domains", "channels", "carriers")
_CHANNEL_KEYS = ("dkim_selector", "signing_domain", "bounce_domain", "submission_port", "process_limit")
_ACCOUNT_KEYS = ("channel", "senders", "daily_quota", "rate_per_minute")
FILE_PREFIX = "file:"
# Route problems, and bad lines of one domain list file, are reported one line each up to this many.
MAX_REPORTED = 20

_NAME_FIX = "use 1-32 lowercase letters, digits and hyphens, starting with a letter, e.g. {example}"
_DOMAIN_ENTRY_FIX = ('give a domain name (example.de), a wildcard for every name below a domain (*.example.de, '
                     '*.de), "*" for every domain, or file:NAME for a list file next to the site file')
_LINE_FIX = "write one domain name or *.wildcard per line (# starts a comment line), e.g. *.example.de"
_SPF_FIX = ("list the mechanisms the provider's SPF documentation gives: include:<domain>, a:<domain>, ip4:<network> "
            "or ip6:<network>, e.g. [include:_spf.isp1.example]; [] when the relay sends with a Return-Path of its own")


@dataclass(frozen=True)
class _Appliance:
    """What the outbound checks compare with: the site's names and addresses, read from its other sections."""

    hostname: str
    domains: list[Domain]
    # Names whose mail or connections reach the appliance, each with why; a relay there would send mail back.
    own_names: dict[str, str]
    own_addresses: set[str]
    ssh_port: int | None

    @property
    def domain_names(self) -> list[str]:
        return [domain.name for domain in self.domains]


@dataclass
class _Entry:
    """One recipient domain pattern of a route, with the field it came from and how messages quote it."""

    pattern: str
    where: str
    shown: str


@dataclass
class _RouteDraft:
    path: str
    entries: list[_Entry]
    channels: list[str]
    carriers: list[str]


@dataclass
class _Limited:
    """Reports up to MAX_REPORTED problems of one kind, then one line saying more are hidden."""

    checker: Checker
    where: str
    what: str
    count: int = 0

    def error(self, path: str, problem: str, fix: str) -> None:
        self.count += 1
        if self.count <= MAX_REPORTED:
            self.checker.error(path, problem, fix)

    def close(self) -> None:
        if self.count > MAX_REPORTED:
            self.checker.error(self.where, f"more {self.what} than the {MAX_REPORTED} shown",
                               "fix those and validate again")


def check_outbound(checker: Checker, top: dict[str, Any], hostname: str | None, host: Host | None,
                   domains: list[Domain], dns: Dns | None) -> Outbound | None:
    """The outbound section; None when the site has none (the staff channel delivers directly) or it is wrong."""
    raw = top.get("outbound")
    if raw is None:
        return None
    data = checker.mapping(raw, "outbound", _OUTBOUND_KEYS,
                           "outbound: {carriers: {...}, routes: [...], channels: {...}, accounts: {...}}")
    if data is None:
        return None
    appliance = _appliance(hostname, host, domains, dns)
    carriers, carrier_names = _carriers(checker, data, appliance)
    channels, channel_names = _channels(checker, data, appliance)
    accounts = _accounts(checker, data, channel_names, appliance)
    routes = _routes(checker, data, carrier_names, [STAFF_CHANNEL, *channel_names], appliance)
    if checker.errors:
        return None
    _check_route_tls(checker, routes, carriers)
    if checker.errors:
        return None
    outbound = Outbound(carriers=tuple(carriers), routes=tuple(routes), channels=tuple(channels),
                        accounts=tuple(accounts))
    if hostname and dns is not None:
        _check_spf_lookups(checker, outbound, hostname, dns, appliance.domain_names)
    return None if checker.errors else outbound


def _appliance(hostname: str | None, host: Host | None, domains: list[Domain], dns: Dns | None) -> _Appliance:
    own_names: dict[str, str] = {}
    for domain in domains:
        own_names[domain.name] = "a domain the appliance hosts (its MX is the appliance)"
        for prefix in ("mta-sts", "autoconfig", "autodiscover"):
            own_names[f"{prefix}.{domain.name}"] = "a name `mailappliance dns plan` points at the appliance"
    own_addresses = {address for address in (dns.ipv4, dns.ipv6) if address} if dns else set()
    ssh_port = None
    if host is not None and host.connection == "ssh":
        ssh_port = host.port
        try:
            own_addresses.add(str(ipaddress.ip_address(host.address)))
        except ValueError:
            own_names[host.address.lower()] = "the appliance itself (host.address)"
    if hostname:
        own_names[hostname] = "the appliance itself (hostname)"
    return _Appliance(hostname=hostname or "", domains=domains, own_names=own_names, own_addresses=own_addresses,
                      ssh_port=ssh_port)


def _named(checker: Checker, data: dict[str, Any], key: str, what: str, most: int, example_name: str,
           example: str) -> list[tuple[str, str, Any]]:
    """The entries of a `name: settings` mapping whose names are valid: (name, field path, settings)."""
    value = data.get(key)
    where = join("outbound", key)
    if value is None:
        return []
    if not isinstance(value, dict):
        checker.error(where, f"expected a mapping, got {show_value(value)}", f"write it as {example}")
        return []
    if len(value) > most:
        checker.error(where, f"lists {len(value)} {what}s", f"an appliance takes at most {most}")
        return []
    fix = _NAME_FIX.format(example=example_name)
    result = []
    for name, settings in value.items():
        path = join(where, key_name(name))
        text = checker.string(name, path, fix, MAX_SHORT_TEXT_LENGTH, f"a {what} name")
        if text is None:
            continue
        if not OUTBOUND_NAME_RE.fullmatch(text):
            checker.error(path, f"{show_value(name)} is not a valid {what} name", fix)
            continue
        result.append((text, path, {} if settings is None else settings))
    return result


# -- carriers -------------------------------------------------------------------------------------------------

def _carriers(checker: Checker, data: dict[str, Any], appliance: _Appliance) -> tuple[list[Carrier], set[str]]:
    """The carriers in file order, then the built-in direct one unless the file sets it; and every declared name
    (also of carriers with mistakes, so routes naming them get no second error)."""
    result: list[Carrier] = []
    names = {DIRECT_CARRIER}
    for name, path, raw in _named(checker, data, "carriers", "carrier", MAX_CARRIERS, "isp1",
                                  "{isp1: {type: relay, host: smtp.isp1.example}}"):
        names.add(name)
        carrier = _carrier(checker, name, path, raw, appliance)
        if carrier is not None:
            result.append(carrier)
    if DIRECT_CARRIER not in [carrier.name for carrier in result]:
        result.append(Carrier(name=DIRECT_CARRIER))
    return result, names


def _carrier(checker: Checker, name: str, path: str, raw: Any, appliance: _Appliance) -> Carrier | None:
    data = checker.mapping(raw, path, _CARRIER_KEYS, "{type: relay, host: smtp.isp.example, port: 587}")
    if data is None:
        return None
    kind = data.get("type", DIRECT_CARRIER)
    where = join(path, "type")
    if kind not in CARRIER_TYPES:
        checker.error(where, f"{show_value(kind)} is not a carrier type",
                      "use direct (delivery to each recipient domain's MX) or relay (through a provider's host)")
        return None
    if name == DIRECT_CARRIER and kind != DIRECT_CARRIER:
        checker.error(where, '"direct" is the name of the built-in delivery to the recipients\' MX',
                      "give the relay another name, e.g. isp1")
        return None
    ok = True
    host, port, tls, username = "", 0, "", ""
    spf: tuple[str, ...] | None = None
    if kind == DIRECT_CARRIER:
        for key in _RELAY_ONLY_KEYS:
            if key in data:
                checker.error(join(path, key), "is only used with type relay", "remove it, or set type: relay")
                ok = False
    else:
        relay_host = _relay_host(checker, data, path, appliance)
        relay_port = checker.whole_number(data, "port", path, DEFAULT_RELAY_PORT, (1, 65535), "a port")
        login = _relay_username(checker, data, path)
        mode = _relay_tls(checker, data, path, login, relay_host)
        # Absent: the site file does not say, which `dns plan` notes; [] says the relay needs nothing.
        given = data.get("spf") is not None
        mechanisms = _relay_spf(checker, data, path) if given else ()
        if relay_host is None or relay_port is None or login is None or mode is None or mechanisms is None:
            return None
        host, port, tls, username, spf = relay_host, relay_port, mode, login, mechanisms if given else None
    source_address = _source_address(checker, data, path)
    helo_name = _helo_name(checker, data, path)
    limits = _limits(checker, data, path)
    mta_sts = _mta_sts(checker, data, path, kind)
    if not ok or source_address is None or helo_name is None or limits is None or mta_sts is None:
        return None
    return Carrier(name=name, type=kind, host=host, port=port, tls=tls, username=username,
                   source_address=source_address, helo_name=helo_name, limits=limits, spf=spf, mta_sts=mta_sts)


def _mta_sts(checker: Checker, data: dict[str, Any], path: str, kind: str) -> bool | None:
    """Whether direct delivery follows the recipient domains' MTA-STS policies (RFC 8461); default no."""
    if "mta_sts" not in data:
        return False
    value, where = data["mta_sts"], join(path, "mta_sts")
    if kind != DIRECT_CARRIER:
        checker.error(where, "is only used with type direct, since a relay is held to its own tls: setting",
                      "remove it (tls: verify has the relay's certificate checked)")
        return None
    if not isinstance(value, bool):
        checker.error(where, f"{show_value(value)} is not true or false",
                      "use true (mail to a domain with an MTA-STS policy in enforce mode goes only to the MX hosts "
                      "it names, over TLS with a verified certificate) or false (the default)")
        return None
    return value


def _relay_host(checker: Checker, data: dict[str, Any], path: str, appliance: _Appliance) -> str | None:
    fix = "give the relay's DNS name or IP address, e.g. smtp.isp1.example"
    value = checker.text(data, "host", path, True, fix, MAX_DOMAIN_LENGTH)
    if value is None:
        return None
    where = join(path, "host")
    loop_fix = "give the provider's relay host; mail relayed to the appliance would come back to it"
    address = _ip_address(value)
    if address is not None:
        if address.is_loopback or address.is_unspecified or address.is_multicast or address.is_link_local:
            checker.error(where, f"{show_value(value)} is a loopback, link-local, multicast or unspecified address",
                          fix)
            return None
        if str(address) in appliance.own_addresses:
            checker.error(where, f"{show_value(value)} is the appliance's own address", loop_fix)
            return None
        return str(address)
    name = value.lower()
    if not is_domain_name(name):
        checker.error(where, f"{show_value(value)} is not a DNS name or IP address", fix)
        return None
    if name in appliance.own_names:
        checker.error(where, f"{show_value(value)} is {appliance.own_names[name]}", loop_fix)
        return None
    return name


def _relay_username(checker: Checker, data: dict[str, Any], path: str) -> str | None:
    value = data.get("username")
    if value is None:
        return ""
    where = join(path, "username")
    fix = ("give the login your provider issued (letters, digits and . _ % + = @ -), e.g. acme-relay; its password "
           "goes into the vault, never into the site file")
    text = checker.string(value, where, fix, 128, "a user name")
    if text is None:
        return None
    if not RELAY_USERNAME_RE.fullmatch(text):
        checker.error(where, f"{show_value(value)} is not a valid relay login", fix)
        return None
    return text


def _relay_tls(checker: Checker, data: dict[str, Any], path: str, username: str | None,
               host: str | None) -> str | None:
    value = data.get("tls", DEFAULT_RELAY_TLS)
    where = join(path, "tls")
    fix = "use verify (the relay's certificate must match its host name) or encrypt (TLS, certificate not checked)"
    if value not in RELAY_TLS_MODES:
        problem = f"{show_value(value)} is not a TLS mode"
        if username:
            problem += ", and the SASL login must never cross the network in clear"
        checker.error(where, problem, fix)
        return None
    if value == "verify" and host is not None and _ip_address(host) is not None:
        checker.error(where, "verify checks the relay's certificate against its host name, but host is an IP address",
                      "give host as the relay's DNS name, or use tls: encrypt")
        return None
    return str(value)


def _relay_spf(checker: Checker, data: dict[str, Any], path: str) -> tuple[str, ...] | None:
    """The SPF mechanisms that authorize the relay's sending hosts, canonical, each once."""
    items = checker.items(data, "spf", path, False, _SPF_FIX)
    if items is None:
        return None
    where = join(path, "spf")
    if len(items) > MAX_SPF_MECHANISMS:
        checker.error(where, f"lists {len(items)} mechanisms",
                      f"list at most {MAX_SPF_MECHANISMS}; a provider's include: covers all its hosts")
        return None
    result: list[str] = []
    first_seen: dict[str, str] = {}
    ok = True
    for index, item in enumerate(items):
        item_where = join(where, index)
        mechanism = _spf_mechanism(checker, item, item_where)
        if mechanism is None:
            ok = False
        elif mechanism in first_seen:
            checker.error(item_where, f"{show_value(item)} is already listed at {first_seen[mechanism]}",
                          "list each mechanism once")
            ok = False
        else:
            first_seen[mechanism] = item_where
            result.append(mechanism)
    return tuple(result) if ok else None


def _spf_mechanism(checker: Checker, item: Any, where: str) -> str | None:
    """One mechanism that passes the hosts it names: include: or a: of a DNS name, ip4: or ip6: of a network.
    Nothing else: no qualifier, all, redirect or macro, so no relay can widen or end the record."""
    text = checker.string(item, where, _SPF_FIX, len("include:") + MAX_DOMAIN_LENGTH, "an SPF mechanism")
    if text is None:
        return None
    kind, sep, value = text.lower().partition(":")
    if kind in ("include", "a") and sep and is_record_name(value):
        return f"{kind}:{value}"
    if kind not in ("ip4", "ip6") or not sep:
        checker.error(where, f"{show_value(item)} is not an SPF mechanism the appliance publishes", _SPF_FIX)
        return None
    version = 4 if kind == "ip4" else 6
    try:
        interface = ipaddress.ip_interface(value) if "%" not in value else None
    except ValueError:
        interface = None
    if interface is None or interface.version != version:
        checker.error(where, f"{show_value(item)} does not name an IPv{version} address or network", _SPF_FIX)
        return None
    network = interface.network
    if network.prefixlen == 0:
        checker.error(where, f"{show_value(item)} is every address",
                      "name the provider's networks; this one lets any host on the internet send as the site's domains")
        return None
    if interface.ip != network.network_address:
        checker.error(where, f"{show_value(item)} has host bits set beyond /{network.prefixlen}",
                      f"write {kind}:{network}")
        return None
    whole = network.network_address if network.prefixlen == network.max_prefixlen else network
    return f"{kind}:{whole}"


def _source_address(checker: Checker, data: dict[str, Any], path: str) -> str | None:
    value = data.get("source_address")
    if value is None:
        return ""
    where = join(path, "source_address")
    fix = "give one of the appliance's own IP addresses to send from, e.g. 192.0.2.11"
    text = checker.ip_text(value, where, fix, "an IP address")
    if text is None:
        return None
    address = _ip_address(text) if text else None
    if address is None:
        checker.error(where, f"{show_value(value)} is not an IP address", fix)
        return None
    if address.is_loopback or address.is_unspecified or address.is_multicast or address.is_link_local:
        checker.error(where, f"{show_value(value)} is a loopback, link-local, multicast or unspecified address", fix)
        return None
    return str(address)


def _helo_name(checker: Checker, data: dict[str, Any], path: str) -> str | None:
    value = data.get("helo_name")
    if value is None:
        return ""
    fix = "give the full DNS name the source address's PTR record names, e.g. bulk.example.com"
    text = checker.string(value, join(path, "helo_name"), fix, MAX_DOMAIN_LENGTH, "a host name")
    if text is None:
        return None
    if not is_domain_name(text.lower()):
        checker.error(join(path, "helo_name"), f"{show_value(value)} is not a fully qualified domain name", fix)
        return None
    return text.lower()


def _limits(checker: Checker, data: dict[str, Any], path: str) -> CarrierLimits | None:
    raw = data.get("limits")
    if raw is None:
        return CarrierLimits()
    where = join(path, "limits")
    limits = checker.mapping(raw, where, _LIMIT_KEYS, "{concurrency_per_destination: 20, messages_per_minute: 30}")
    if limits is None:
        return None
    concurrency = checker.whole_number(limits, "concurrency_per_destination", where,
                                       DEFAULT_CONCURRENCY_PER_DESTINATION, CONCURRENCY_PER_DESTINATION_RANGE,
                                       "a whole number of connections")
    rate: int | None = 0
    if "messages_per_minute" in limits:
        rate = checker.whole_number(limits, "messages_per_minute", where, 30, MESSAGES_PER_MINUTE_RANGE,
                                    "a whole number of messages (Postfix spaces deliveries by whole seconds; "
                                    "limit faster carriers with concurrency_per_destination)")
    if concurrency is None or rate is None:
        return None
    return CarrierLimits(concurrency_per_destination=concurrency, messages_per_minute=rate)


def _check_spf_lookups(checker: Checker, outbound: Outbound, hostname: str, dns: Dns, domains: list[str]) -> None:
    """The SPF record `dns plan` writes for each domain must stay within the DNS lookups receivers allow. Only the
    record's own terms are counted here; `dns check` counts the includes' terms too."""
    over: dict[tuple[str, ...], list[str]] = {}
    who: dict[str, str] = {}
    for domain, senders in spf_senders(hostname, dns, outbound, domains).items():
        for sender in senders:
            for mechanism in sender.mechanisms or ():
                who.setdefault(mechanism, sender.who)
        mechanisms = spf_mechanisms(senders)
        if lookup_count(mechanisms) > SPF_MAX_LOOKUPS:
            over.setdefault(tuple(mechanisms), []).append(domain)
    for mechanisms, names in over.items():
        counted = [m for m in mechanisms if lookup_count([m])]
        shown = ", ".join(f"{m} ({who[m]})" for m in counted)
        fix = ("give networks (ip4:, ip6:) instead of include: and a: in the carriers' spf where the provider "
               "documents them, or route these domains' mail through fewer relays")
        if not dns.ipv4 and not dns.ipv6:
            fix += "; set dns.ipv4 so the appliance's own addresses need no a: lookup"
        checker.error("outbound.carriers", f"the SPF record of {', '.join(names)} would need {len(counted)} DNS "
                      f"lookups ({shown}); receivers fail SPF for all its mail past {SPF_MAX_LOOKUPS} "
                      "(RFC 7208 section 4.6.4)", fix)


# -- channels -------------------------------------------------------------------------------------------------

def _channels(checker: Checker, data: dict[str, Any], appliance: _Appliance) -> tuple[list[Channel], list[str]]:
    """The dedicated channels, and the names of all declared (also those with mistakes)."""
    result: list[Channel] = []
    names: list[str] = []
    ports: dict[int, str] = {}
    keys = {(domain.name, domain.dkim_selector): join(join("domains", index), "dkim_selector")
            for index, domain in enumerate(appliance.domains)}
    for name, path, raw in _named(checker, data, "channels", "channel", MAX_CHANNELS, "orders",
                                  "{orders: {signing_domain: example.com, submission_port: 2587}}"):
        if name == STAFF_CHANNEL:
            # The appliance's own path needs no settings; naming it (staff: {}) is allowed and changes nothing.
            settings = raw if isinstance(raw, dict) else {"": raw}
            for key in settings:
                checker.error(join(path, key) if key else path,
                              "staff is the appliance's own path (port 25, submission on 587 and 465) and takes no "
                              "settings", "remove them; give a dedicated channel another name, e.g. orders")
            continue
        names.append(name)
        channel = _channel(checker, name, path, raw, appliance, ports, keys)
        if channel is not None:
            result.append(channel)
    return result, names


def _channel(checker: Checker, name: str, path: str, raw: Any, appliance: _Appliance, ports: dict[int, str],
             keys: dict[tuple[str, str], str]) -> Channel | None:
    data = checker.mapping(raw, path, _CHANNEL_KEYS, "{signing_domain: example.com, submission_port: 2587}")
    if data is None:
        return None
    signing_domain = _site_domain(checker, data, "signing_domain", path, None, appliance,
                                  "it signs with a DKIM key published for it")
    # Defaults to the signing domain ("" while that is wrong, which is reported already).
    bounce_domain = _site_domain(checker, data, "bounce_domain", path, signing_domain or "", appliance,
                                 "bounces to the Return-Path come back to it")
    where = join(path, "dkim_selector")
    selector_fix = "use lowercase letters, digits and hyphens (a single DNS label), e.g. orders"
    selector = checker.string(data.get("dkim_selector", name), where, selector_fix, MAX_SHORT_TEXT_LENGTH,
                              "a DKIM selector")
    if selector is not None and not LABEL_RE.fullmatch(selector):
        checker.error(where, f"{show_value(selector)} is not a valid DKIM selector", selector_fix)
        selector = None
    if selector is not None and signing_domain:
        key = (signing_domain, selector)
        if key in keys:
            checker.error(where, f"{selector}._domainkey.{signing_domain} is already the DKIM key of {keys[key]}",
                          "give the channel a selector of its own (each channel signs with a key of its own)")
            selector = None
        else:
            keys[key] = where
    port = _submission_port(checker, data, path, appliance, ports)
    process_limit = checker.whole_number(data, "process_limit", path, DEFAULT_CHANNEL_PROCESS_LIMIT,
                                         CHANNEL_PROCESS_LIMIT_RANGE, "a whole number of processes")
    if not signing_domain or not bounce_domain or selector is None or port is None or process_limit is None:
        return None
    return Channel(name=name, dkim_selector=selector, signing_domain=signing_domain, bounce_domain=bounce_domain,
                   submission_port=port, process_limit=process_limit)


def _site_domain(checker: Checker, data: dict[str, Any], key: str, path: str, default: str | None,
                 appliance: _Appliance, why: str) -> str | None:
    """One of the site's domains at `key`; `default` when absent (required when that is None)."""
    declared = ", ".join(appliance.domain_names) or "none yet"
    fix = f"use one of the site's domains ({declared}); {why}"
    if data.get(key) is None and default is not None:
        return default
    value = checker.text(data, key, path, True, fix, MAX_DOMAIN_LENGTH)
    if value is None:
        return None
    where = join(path, key)
    if not is_domain_name(value.lower()):
        checker.error(where, f"{show_value(value)} is not a valid domain name", fix)
        return None
    if value.lower() not in appliance.domain_names:
        checker.error(where, f"{show_value(value)} is not one of the site's domains", fix)
        return None
    return value.lower()


def _submission_port(checker: Checker, data: dict[str, Any], path: str, appliance: _Appliance,
                     ports: dict[int, str]) -> int | None:
    low, high = SUBMISSION_PORT_RANGE
    fix = f"give the channel a port of its own from {low} to {high}, e.g. submission_port: 2587"
    value, where = checker.present(data, "submission_port", path, True, fix)
    if value is None:
        return None
    number = isinstance(value, int) and not isinstance(value, bool)
    if number and value in APPLIANCE_PORTS:
        checker.error(where, f"{value} is the appliance's port for {APPLIANCE_PORTS[value]}", fix)
        return None
    if number and value == appliance.ssh_port:
        checker.error(where, f"{value} is the port Ansible reaches the appliance on (host.port)", fix)
        return None
    port = checker.whole_number(data, "submission_port", path, 2587, SUBMISSION_PORT_RANGE, "a port")
    if port is None:
        return None
    if port in ports:
        checker.error(where, f"{port} is already the submission port of {ports[port]}", fix)
        return None
    ports[port] = path
    return port


# -- accounts -------------------------------------------------------------------------------------------------

def _accounts(checker: Checker, data: dict[str, Any], channels: list[str], appliance: _Appliance) -> list[Account]:
    result = []
    for name, path, raw in _named(checker, data, "accounts", "account", MAX_ACCOUNTS, "shop",
                                  "{shop: {channel: orders, senders: [shop@example.com], daily_quota: 50000, "
                                  "rate_per_minute: 600}}"):
        account = _account(checker, name, path, raw, channels, appliance)
        if account is not None:
            result.append(account)
    return result


def _account(checker: Checker, name: str, path: str, raw: Any, channels: list[str],
             appliance: _Appliance) -> Account | None:
    data = checker.mapping(raw, path, _ACCOUNT_KEYS,
                           "{channel: orders, senders: [shop@example.com], daily_quota: 50000, rate_per_minute: 600}")
    if data is None:
        return None
    known = ", ".join(channels) if channels else "none yet"
    channel_fix = f"bind it to a dedicated channel of outbound.channels ({known})"
    channel = checker.text(data, "channel", path, True, channel_fix, MAX_SHORT_TEXT_LENGTH)
    where = join(path, "channel")
    if channel == STAFF_CHANNEL:
        checker.error(where, "staff is the mailboxes' own path; sending accounts send on a dedicated channel",
                      channel_fix)
        channel = None
    elif channel is not None and channel not in channels:
        checker.error(where, f"{show_value(channel)} is not a channel of outbound.channels", channel_fix)
        channel = None
    senders = _senders(checker, data, path, appliance)
    counts = {}
    for key, bounds, what in (("daily_quota", DAILY_QUOTA_RANGE, "recipients a day"),
                              ("rate_per_minute", RATE_PER_MINUTE_RANGE, "messages a minute")):
        example = 50000 if key == "daily_quota" else 600
        fix = f"use a whole number of {what} from {bounds[0]} to {bounds[1]:,}, e.g. {key}: {example}"
        value, _ = checker.present(data, key, path, True, fix)
        counts[key] = None if value is None else checker.whole_number(data, key, path, example, bounds,
                                                                      f"a whole number of {what}")
    daily_quota, rate = counts["daily_quota"], counts["rate_per_minute"]
    if channel is None or senders is None or daily_quota is None or rate is None:
        return None
    return Account(name=name, channel=channel, senders=senders, daily_quota=daily_quota, rate_per_minute=rate)


def _senders(checker: Checker, data: dict[str, Any], path: str, appliance: _Appliance) -> tuple[str, ...] | None:
    fix = "list the addresses it sends as, or @domain for any address of a domain, e.g. [shop@example.com]"
    items = checker.items(data, "senders", path, True, fix)
    if not items:
        return None
    where = join(path, "senders")
    if len(items) > MAX_SENDERS:
        checker.error(where, f"lists {len(items)} senders",
                      f"list at most {MAX_SENDERS}; use @domain for a whole domain")
        return None
    declared = ", ".join(appliance.domain_names) or "none yet"
    result: list[str] = []
    first_seen: dict[str, str] = {}
    ok = True
    for index, value in enumerate(items):
        item_where = join(where, index)
        text = checker.string(value, item_where, fix, MAX_ADDRESS_LENGTH, "an email address")
        if text is None:
            ok = False
            continue
        sender = text.lower()
        valid = is_domain_name(sender[1:]) if sender.startswith("@") else is_email_address(sender, hosted=True)
        if not valid:
            checker.error(item_where, f"{show_value(value)} is not a valid sender",
                          "use local-part@domain with letters, digits, dots, hyphens and underscores before the @, "
                          "or @domain")
            ok = False
            continue
        domain = sender.rpartition("@")[2]
        if domain not in appliance.domain_names:
            checker.error(item_where, f"{show_value(value)} is not in one of the site's domains",
                          f"use the site's domains ({declared}); the appliance signs and publishes SPF only for them")
            ok = False
            continue
        if sender in first_seen:
            checker.error(item_where, f"{show_value(value)} is already listed at {first_seen[sender]}",
                          "list each sender once")
            ok = False
            continue
        first_seen[sender] = item_where
        result.append(sender)
    return tuple(result) if ok else None


# -- routes ---------------------------------------------------------------------------------------------------

def _routes(checker: Checker, data: dict[str, Any], carriers: set[str], channels: list[str],
            appliance: _Appliance) -> list[Route]:
    """The routes in file order, then the implied catch-all: direct delivery for every channel whose routes end
    without "*"."""
    fix = "list routes, e.g. routes: [{domains: [\"*\"], carriers: [isp1, isp2]}]"
    items = checker.items(data, "routes", "outbound", False, fix) or []
    if len(items) > MAX_ROUTES:
        checker.error("outbound.routes", f"lists {len(items)} routes",
                      f"list at most {MAX_ROUTES}; put the domains that share carriers into one route")
        return []
    drafts = []
    for index, item in enumerate(items):
        draft = _route(checker, join("outbound.routes", index), item, carriers, channels, appliance)
        if draft is not None:
            drafts.append(draft)
    routed = _check_hidden_routes(checker, drafts, channels)
    routes = [Route(domains=tuple(entry.pattern for entry in draft.entries), channels=tuple(draft.channels),
                    carriers=tuple(draft.carriers)) for draft in drafts]
    uncovered = tuple(channel for channel in channels if CATCH_ALL_DOMAINS not in routed[channel])
    if uncovered:
        routes.append(Route(domains=(CATCH_ALL_DOMAINS,), channels=uncovered, carriers=(DIRECT_CARRIER,)))
    return routes


def _check_route_tls(checker: Checker, routes: list[Route], carriers: list[Carrier]) -> None:
    """A route's carriers must all use implicit TLS (port 465) or none: Postfix sets it per route transport, so
    a fallback of the other kind could not be reached."""
    implicit = {carrier.name: carrier.type == "relay" and carrier.port == IMPLICIT_TLS_PORT for carrier in carriers}
    for index, route in enumerate(routes):
        if len({implicit[name] for name in route.carriers}) > 1:
            on_465 = ", ".join(name for name in route.carriers if implicit[name])
            checker.error(join(join("outbound.routes", index), "carriers"),
                          f"mixes implicit TLS on port {IMPLICIT_TLS_PORT} ({on_465}) with STARTTLS carriers; Postfix "
                          "sets this per route, so the fallback could not be reached",
                          f"give the route carriers of one kind (the relay's STARTTLS port 587, or {IMPLICIT_TLS_PORT} "
                          "for all), or split it into two routes")


def _route(checker: Checker, path: str, item: Any, carriers: set[str], channels: list[str],
           appliance: _Appliance) -> _RouteDraft | None:
    data = checker.mapping(item, path, _ROUTE_KEYS, '- {domains: ["*.example.de"], carriers: [isp1, isp2]}')
    if data is None:
        return None
    entries = _route_domains(checker, data, path, appliance)
    route_channels = _route_names(checker, data, "channels", path, channels, False,
                                  f"list channels of this route ({', '.join(channels)}), or leave channels out "
                                  "for all of them", "channel")
    known = ", ".join([DIRECT_CARRIER, *sorted(carriers - {DIRECT_CARRIER})])
    route_carriers = _route_names(checker, data, "carriers", path, sorted(carriers), True,
                                  f"list carriers, the first one primary and the others its fallbacks ({known})",
                                  "carrier")
    if entries is None or route_channels is None or route_carriers is None:
        return None
    if DIRECT_CARRIER in route_carriers[1:]:
        checker.error(join(path, "carriers"), f"{DIRECT_CARRIER} is a fallback here; Postfix falls back to fixed relay "
                      "hosts only, and direct delivery has none (each recipient domain's MX)",
                      f"put {DIRECT_CARRIER} first, with relays as its fallbacks, or leave it out of this route")
        return None
    if len(route_carriers) > MAX_ROUTE_CARRIERS:
        checker.error(join(path, "carriers"), f"lists {len(route_carriers)} carriers",
                      f"list at most {MAX_ROUTE_CARRIERS}: the primary and its fallbacks")
        return None
    return _RouteDraft(path=path, entries=entries, channels=route_channels or list(channels), carriers=route_carriers)


def _route_names(checker: Checker, data: dict[str, Any], key: str, path: str, known: list[str], required: bool,
                 fix: str, what: str) -> list[str] | None:
    """The channel or carrier names of a route, each known and listed once; [] when absent and not required."""
    value, where = checker.present(data, key, path, required, fix)
    if value is None:
        return None if required else []
    if not isinstance(value, list) or not value:
        problem = "the list is empty" if value == [] else f"expected a list of {what} names, got {show_value(value)}"
        checker.error(where, problem, fix)
        return None
    result: list[str] = []
    ok = True
    for index, item in enumerate(value):
        item_where = join(where, index)
        name = checker.string(item, item_where, fix, MAX_SHORT_TEXT_LENGTH, f"a {what} name")
        if name is None:
            ok = False
        elif name not in known:
            checker.error(item_where, f"{show_value(item)} is not a {what}", fix)
            ok = False
        elif name in result:
            again = ("a fallback to the same carrier retries what just failed" if what == "carrier"
                     else "each channel is listed once")
            checker.error(item_where, f"{show_value(item)} is listed twice in this route; {again}",
                          f"list each {what} once")
            ok = False
        else:
            result.append(name)
    return result if ok else None


def _route_domains(checker: Checker, data: dict[str, Any], path: str, appliance: _Appliance) -> list[_Entry] | None:
    value, where = checker.present(data, "domains", path, True, _DOMAIN_ENTRY_FIX)
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        problem = "the list is empty" if value == [] else f"expected a list of domains, got {show_value(value)}"
        checker.error(where, problem, _DOMAIN_ENTRY_FIX)
        return None
    entries: list[_Entry] = []
    ok = True
    for index, item in enumerate(value):
        item_where = join(where, index)
        text = checker.string(item, item_where, _DOMAIN_ENTRY_FIX, len(FILE_PREFIX) + MAX_PATH_LENGTH,
                              "a domain pattern")
        if text is None:
            ok = False
        elif text.startswith(FILE_PREFIX):
            listed = _domain_file(checker, text[len(FILE_PREFIX):], item_where, appliance)
            ok = listed is not None and ok
            entries += listed or []
        else:
            pattern = _domain_pattern(checker.error, text, item_where, show_value(text), _DOMAIN_ENTRY_FIX,
                                      appliance, catch_all=True)
            ok = pattern is not None and ok
            if pattern is not None:
                entries.append(_Entry(pattern, item_where, show_value(text)))
    if not ok:
        return None
    # The same pattern twice would be two lines of one key in a Postfix map.
    unique: dict[str, _Entry] = {}
    duplicates = _Limited(checker, where, "domains listed twice")
    for entry in entries:
        if entry.pattern in unique:
            first = unique[entry.pattern]
            duplicates.error(entry.where, f"{entry.shown} is listed twice in this route (also at {first.shown} of "
                                          f"{first.where})", "list each domain once")
        else:
            unique[entry.pattern] = entry
    duplicates.close()
    return list(unique.values()) if not duplicates.count else None


def _domain_pattern(report: Callable[[str, str, str], None], text: str, where: str, shown: str, fix: str,
                    appliance: _Appliance, catch_all: bool) -> str | None:
    """A domain name, *.suffix or (where allowed) "*", lower case; hosted domains never leave through a carrier.
    Problems go to `report` (Checker.error, or a _Limited's for the lines of a list file)."""
    pattern = text.lower()
    if catch_all and pattern == CATCH_ALL_DOMAINS:
        return pattern
    if not (is_domain_name(pattern) or is_domain_wildcard(pattern)):
        report(where, f"{shown} is not a domain name or wildcard", fix)
        return None
    if pattern == appliance.hostname or pattern in appliance.domain_names:
        what = "the appliance's own name" if pattern == appliance.hostname else "a domain the appliance hosts"
        report(where, f"{shown} is {what}; its mail is delivered here and never leaves through a carrier",
               "remove it from the route (wildcards and \"*\" never take hosted domains out)")
        return None
    return pattern


def _domain_file(checker: Checker, name: str, where: str, appliance: _Appliance) -> list[_Entry] | None:
    """The domain patterns of a list file next to the site file, one a line; blank and # lines are skipped."""
    file = checker.local_file(name, where, "name a file next to the site file, e.g. file:overseas.txt")
    if file is None:
        return None
    shown_file = show_value(name)
    with file.open("rb") as stream:
        content = stream.read(MAX_DOMAIN_LIST_BYTES + 1)
    if len(content) > MAX_DOMAIN_LIST_BYTES:
        checker.error(where, f"{shown_file} is larger than {MAX_DOMAIN_LIST_BYTES // 1024**2} MiB",
                      "a domain list is text of one domain a line; check that this is the right file")
        return None
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content.count(b"\n", 0, exc.start) + 1
        checker.error(where, f"{shown_file} line {line} is not UTF-8 text", "save the file as UTF-8 text")
        return None
    entries: list[_Entry] = []
    problems = _Limited(checker, where, f"bad lines in {shown_file}")
    for number, line in enumerate(text.split("\n"), start=1):
        if not line or line.startswith("#"):
            continue
        shown = f"{shown_file} line {number}: {show_value(line)}"
        bad = next((char for char in line if is_unsafe_char(char)), None)
        if bad is not None:
            problems.error(where, f"{shown} contains {describe_char(bad)}", _LINE_FIX)
        elif line != line.strip():
            problems.error(where, f"{shown} has whitespace at its start or end", _LINE_FIX)
        else:
            pattern = _domain_pattern(problems.error, line, where, shown, _LINE_FIX, appliance, catch_all=False)
            if pattern is not None:
                entries.append(_Entry(pattern, where, shown))
    problems.close()
    if problems.count:
        return None
    if not entries:
        checker.error(where, f"{shown_file} lists no domains", _LINE_FIX)
        return None
    return entries


def _check_hidden_routes(checker: Checker, drafts: list[_RouteDraft], channels: list[str]) -> dict[str, dict[str, int]]:
    """Report every route entry an earlier route already takes for one of its channels: the first matching route
    wins, so it would never apply there (and Postfix's transport maps, which prefer the most specific pattern,
    would disagree). Returns, per channel, each routed pattern with the index of its route."""
    routed: dict[str, dict[str, int]] = {channel: {} for channel in channels}
    problems = _Limited(checker, "outbound.routes", "hidden routes")
    for index, draft in enumerate(drafts):
        hidden = []
        for entry in draft.entries:
            covered = {channel: cover for channel in draft.channels
                       if (cover := _covering(routed[channel], entry.pattern)) is not None}
            if covered:
                hidden.append((entry, covered))
        whole = len(hidden) == len(draft.entries) and all(len(c) == len(draft.channels) for _, c in hidden)
        if whole:
            earlier = sorted({route for _, covered in hidden for _, route in covered.values()})
            problems.error(draft.path, "every domain of this route is already routed for its channels by "
                           + ", ".join(f"outbound.routes[{route}]" for route in earlier) + ", so it never applies",
                           "remove it, or move it above the routes that take its domains")
        else:
            for entry, covered in hidden:
                names = list(covered)
                pattern, route = covered[names[0]]
                channel_list = ", ".join(names)
                problems.error(entry.where, f"{entry.shown} is already routed by {show_value(pattern)} in "
                               f"outbound.routes[{route}] for channel{'s' if len(names) > 1 else ''} {channel_list}, "
                               "so this route never applies to it there",
                               f"move this route above outbound.routes[{route}], or leave {channel_list} out of its "
                               "channels")
        for channel in draft.channels:
            for entry in draft.entries:
                routed[channel].setdefault(entry.pattern, index)
    problems.close()
    return routed


def _covering(routed: dict[str, int], pattern: str) -> tuple[str, int] | None:
    """The routed pattern (and its route) that takes every domain `pattern` stands for: the same pattern, a
    wildcard of a parent domain, or "*"."""
    if pattern in routed:
        return pattern, routed[pattern]
    if pattern != CATCH_ALL_DOMAINS:
        labels = pattern.removeprefix("*.").split(".")
        # *.example.com takes names below example.com, not example.com itself.
        for start in range(0 if pattern.startswith("*.") else 1, len(labels)):
            wildcard = "*." + ".".join(labels[start:])
            if wildcard in routed:
                return wildcard, routed[wildcard]
    if CATCH_ALL_DOMAINS in routed:
        return CATCH_ALL_DOMAINS, routed[CATCH_ALL_DOMAINS]
    return None


def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
