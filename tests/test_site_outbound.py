"""The outbound: section of the site model: carriers, routes, channels and accounts load into typed data with their
defaults and the implied catch-all route; each mistake gives one exact, located message."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from conftest import MINIMAL_SITE, OUTBOUND_SITE, PROJECT_DIR, write_site
from mailappliance.errors import UserError, is_unsafe_char
from mailappliance.site import Account, Carrier, CarrierLimits, Channel, Outbound, Route, load_site
from mailappliance.site.model import APPLIANCE_PORTS

DELETE = object()
# A valid outbound: section on MINIMAL_SITE (domains alpha.test and beta.test, hostname mail.alpha.test); each bad
# case changes one part of it.
OUTBOUND: dict = {
    "carriers": {
        "isp1": {"type": "relay", "host": "smtp.isp1.example", "username": "acme-relay"},
        "isp2": {"type": "relay", "host": "relay.isp2.example", "port": 2525},
    },
    "routes": [{"domains": ["*"], "channels": ["orders"], "carriers": ["isp1", "isp2"]}],
    "channels": {
        "orders": {"signing_domain": "alpha.test", "submission_port": 2587},
        "bulk": {"signing_domain": "beta.test", "submission_port": 2588},
    },
    "accounts": {
        "shop": {"channel": "orders", "senders": ["orders@alpha.test"], "daily_quota": 50000, "rate_per_minute": 600},
    },
}


def site_with(path: str = "", value: object = None, **top: object) -> dict:
    """MINIMAL_SITE with OUTBOUND, the value at `path` ("carriers.isp1.port", "routes[0].carriers") in its
    outbound: section replaced (or removed with DELETE), and top-level keys changed."""
    data = copy.deepcopy(MINIMAL_SITE)
    data["outbound"] = copy.deepcopy(OUTBOUND)
    if path:
        steps = [int(step) if step.isdigit() else step for step in re.split(r"[.\[\]]+", path.strip("]"))]
        target = data["outbound"]
        for step in steps[:-1]:
            target = target.setdefault(step, {}) if isinstance(step, str) else target[step]
        if value is DELETE:
            del target[steps[-1]]
        else:
            target[steps[-1]] = value
    data.update(top)
    return data


def errors_of(directory: Path, data: dict | str) -> list[str]:
    with pytest.raises(UserError) as caught:
        load_site(write_site(directory, data))
    return [line.removeprefix("site.yml: ") for line in caught.value.lines]


def test_the_outbound_example_loads_into_the_model(outbound_site: Path) -> None:
    outbound = load_site(outbound_site).outbound
    assert outbound == Outbound(
        carriers=(
            Carrier("isp1", "relay", "smtp.isp1.example", 587, "verify", "acme-relay",
                    limits=CarrierLimits(concurrency_per_destination=10, messages_per_minute=30),
                    spf=("include:_spf.isp1.example",)),
            Carrier("isp2", "relay", "relay.isp2.example", 2525, "verify"),
            Carrier("direct", source_address="192.0.2.11", helo_name="out.acme.example", mta_sts=True),
        ),
        routes=(
            Route(("*.de", "*.fr", "*.co.uk", "partner.example.net"), ("staff", "orders", "bulk"), ("isp2", "isp1")),
            Route(("*",), ("orders", "bulk"), ("isp1", "isp2")),
            # Implied: staff mail no route takes is delivered directly, as without an outbound: section.
            Route(("*",), ("staff",), ("direct",)),
        ),
        channels=(
            Channel("orders", "orders", "acme.example", "acme.example", 2587, 100),
            Channel("bulk", "bulk2026", "news.acme.example", "news.acme.example", 2588, 200),
        ),
        accounts=(
            Account("shop", "orders", ("orders@acme.example", "invoices@acme.example"), 50000, 600),
            Account("newsletter", "bulk", ("@news.acme.example",), 2000000, 6000),
        ),
    )


def test_without_outbound_the_staff_channel_delivers_directly(site_dir: Path) -> None:
    assert load_site(write_site(site_dir, MINIMAL_SITE)).outbound is None
    empty = load_site(write_site(site_dir, dict(MINIMAL_SITE, outbound={}))).outbound
    assert empty == Outbound(carriers=(Carrier("direct"),), routes=(Route(("*",), ("staff",), ("direct",)),))


def test_defaults_and_the_implied_catch_all(site_dir: Path) -> None:
    outbound = load_site(write_site(site_dir, site_with())).outbound
    assert outbound is not None
    assert outbound.carriers[0] == Carrier("isp1", "relay", "smtp.isp1.example", 587, "verify", "acme-relay", "",
                                           "", CarrierLimits(20, 0))
    assert [carrier.name for carrier in outbound.carriers] == ["isp1", "isp2", "direct"]
    assert outbound.channels[1] == Channel("bulk", "bulk", "beta.test", "beta.test", 2588, 100)
    # orders has its catch-all; staff and bulk get the implied one.
    assert outbound.routes == (Route(("*",), ("orders",), ("isp1", "isp2")),
                               Route(("*",), ("staff", "bulk"), ("direct",)))


def test_names_are_lower_cased_and_addresses_canonical(site_dir: Path) -> None:
    data = site_with("carriers.isp1", {"type": "relay", "host": "SMTP.ISP1.example", "helo_name": "Out.Alpha.test",
                                       "source_address": "2001:DB8:0::11"})
    data["outbound"]["routes"][0]["domains"] = ["*.Example.DE", "Partner.example"]
    data["outbound"]["accounts"]["shop"]["senders"] = ["Orders@Alpha.test", "@BETA.test"]
    outbound = load_site(write_site(site_dir, data)).outbound
    assert outbound is not None
    assert (outbound.carriers[0].host, outbound.carriers[0].helo_name, outbound.carriers[0].source_address) == (
        "smtp.isp1.example", "out.alpha.test", "2001:db8::11")
    assert outbound.routes[0].domains == ("*.example.de", "partner.example")
    assert outbound.accounts[0].senders == ("orders@alpha.test", "@beta.test")


def test_specific_routes_before_wildcards_and_per_channel_catch_alls(site_dir: Path) -> None:
    data = site_with("routes", [
        {"domains": ["shop.example.de", "*.shop.example.fr"], "carriers": ["isp2"]},
        {"domains": ["*.example.de", "*.fr"], "carriers": ["isp1"]},
        {"domains": ["example.de"], "channels": ["bulk"], "carriers": ["direct", "isp2"]},
        {"domains": ["*"], "channels": ["bulk"], "carriers": ["isp1"]},
        {"domains": ["*"], "channels": ["orders"], "carriers": ["isp2"]},
    ])
    outbound = load_site(write_site(site_dir, data)).outbound
    assert outbound is not None
    assert [route.channels for route in outbound.routes] == [
        ("staff", "orders", "bulk"), ("staff", "orders", "bulk"), ("bulk",), ("bulk",), ("orders",), ("staff",)]


def test_relay_spf_is_canonical_and_absent_is_not_empty(site_dir: Path) -> None:
    data = site_with("carriers.isp1.spf", ["Include:_SPF.isp1.example", "a:Smtp.ISP1.example", "ip4:198.51.100.0/24",
                                           "ip4:198.51.100.7/32", "ip6:2001:DB8:1::/48", "ip6:2001:db8:2::1"])
    data["outbound"]["carriers"]["isp2"]["spf"] = []
    outbound = load_site(write_site(site_dir, data)).outbound
    assert outbound is not None
    assert [carrier.spf for carrier in outbound.carriers] == [
        ("include:_spf.isp1.example", "a:smtp.isp1.example", "ip4:198.51.100.0/24", "ip4:198.51.100.7",
         "ip6:2001:db8:1::/48", "ip6:2001:db8:2::1"),
        (),
        # The direct carrier sends from the appliance's (or its source) address; the site file gives it no spf.
        None,
    ]
    assert load_site(write_site(site_dir, site_with())).outbound.carriers[0].spf is None


def test_ten_lookups_are_allowed_when_the_appliance_needs_none(site_dir: Path) -> None:
    """With a public address the appliance is ip4: (no lookup), so ten includes of a relay still fit."""
    data = site_with("carriers.isp1.spf", [f"include:_spf{n}.isp1.example" for n in range(10)],
                     dns={"ipv4": "192.0.2.10"})
    outbound = load_site(write_site(site_dir, data)).outbound
    assert outbound is not None and len(outbound.carriers[0].spf or ()) == 10
    # Staff mail (every domain) through isp1 as well: both domains' records are over, one message names both.
    data["outbound"]["routes"][0]["channels"] = ["staff", "orders"]
    data["outbound"]["carriers"]["isp2"]["spf"] = ["a:relay.isp2.example"]
    assert errors_of(site_dir, data) == [
        "outbound.carriers: the SPF record of alpha.test, beta.test would need 11 DNS lookups ("
        + ", ".join(f"include:_spf{n}.isp1.example (carrier isp1)" for n in range(10))
        + ", a:relay.isp2.example (carrier isp2)); receivers fail SPF for all its mail past 10 (RFC 7208 section "
        "4.6.4); give networks (ip4:, ip6:) instead of include: and a: in the carriers' spf where the provider "
        "documents them, or route these domains' mail through fewer relays"]


def test_staff_may_be_named_without_settings_and_routed(site_dir: Path) -> None:
    data = site_with("channels.staff", {})
    data["outbound"]["routes"] = [{"domains": ["*"], "channels": ["staff"], "carriers": ["direct", "isp1"]}]
    outbound = load_site(write_site(site_dir, data)).outbound
    assert outbound is not None
    assert [channel.name for channel in outbound.channels] == ["orders", "bulk"]
    assert outbound.routes[0] == Route(("*",), ("staff",), ("direct", "isp1"))
    assert outbound.routes[1] == Route(("*",), ("orders", "bulk"), ("direct",))


def test_mta_sts_is_a_switch_of_direct_carriers(site_dir: Path) -> None:
    data = site_with("carriers.direct", {"mta_sts": True})
    data["outbound"]["carriers"]["mx2"] = {"type": "direct", "source_address": "192.0.2.12", "mta_sts": False}
    outbound = load_site(write_site(site_dir, data)).outbound
    assert outbound is not None
    assert {carrier.name: carrier.mta_sts for carrier in outbound.carriers} == {
        "isp1": False, "isp2": False, "direct": True, "mx2": False}
    # Left out, the built-in direct carrier does not ask for policies.
    assert load_site(write_site(site_dir, site_with())).outbound.carriers[-1] == Carrier("direct")


NAME_FIX = "use 1-32 lowercase letters, digits and hyphens, starting with a letter, e.g. "
TLS_FIX = "use verify (the relay's certificate must match its host name) or encrypt (TLS, certificate not checked)"
LOOP_FIX = "give the provider's relay host; mail relayed to the appliance would come back to it"
CARRIER_FIX = "list carriers, the first one primary and the others its fallbacks (direct, isp1, isp2)"
CHANNEL_FIX = "list channels of this route (staff, orders, bulk), or leave channels out for all of them"
PORT_FIX = "give the channel a port of its own from 1024 to 65535, e.g. submission_port: 2587"
MTA_STS_FIX = ("use true (mail to a domain with an MTA-STS policy in enforce mode goes only to the MX hosts it names, "
               "over TLS with a verified certificate) or false (the default)")
ACCOUNT_CHANNEL_FIX = "bind it to a dedicated channel of outbound.channels (orders, bulk)"
SPF_FIX = ("list the mechanisms the provider's SPF documentation gives: include:<domain>, a:<domain>, ip4:<network> or "
           "ip6:<network>, e.g. [include:_spf.isp1.example]; [] when the relay sends with a Return-Path of its own")
ISP1_SPF = "include:_spf.isp1.example"
# isp1 carries orders mail, whose Return-Path is in alpha.test; without a public address the appliance is a:.
ELEVEN_LOOKUPS = ("outbound.carriers: the SPF record of alpha.test would need 11 DNS lookups (a:mail.alpha.test (the "
                  "appliance), " + ", ".join(f"include:_spf{n}.isp1.example (carrier isp1)" for n in range(10))
                  + "); receivers fail SPF for all its mail past 10 (RFC 7208 section 4.6.4); give networks (ip4:, "
                  "ip6:) instead of include: and a: in the carriers' spf where the provider documents them, or route "
                  "these domains' mail through fewer relays; set dns.ipv4 so the appliance's own addresses need no a: "
                  "lookup")
BAD_OUTBOUND = [
    # -- the section and unknown keys
    pytest.param(site_with("carrier", {}),
                 "outbound.carrier: unknown key; did you mean carriers? allowed keys are carriers, routes, channels, "
                 "accounts", id="unknown-section-key"),
    pytest.param(site_with(outbound=["carriers"]),
                 "outbound: expected a mapping, got a list; write it as outbound: {carriers: {...}, routes: [...], "
                 "channels: {...}, accounts: {...}}", id="section-not-a-mapping"),
    pytest.param(site_with("carriers.isp1.hots", "x"),
                 "outbound.carriers.isp1.hots: unknown key; did you mean host? allowed keys are type, host, port, tls, "
                 "username, spf, source_address, helo_name, limits, mta_sts", id="unknown-carrier-key"),
    pytest.param(site_with("carriers.isp1.password", "secret"),
                 "outbound.carriers.isp1.password: unknown key; allowed keys are type, host, port, tls, username, spf, "
                 "source_address, helo_name, limits, mta_sts", id="password-in-the-site-file"),
    pytest.param(site_with("carriers.isp1.limits", {"rate": 5}),
                 "outbound.carriers.isp1.limits.rate: unknown key; allowed keys are concurrency_per_destination, "
                 "messages_per_minute", id="unknown-limits-key"),
    pytest.param(site_with("routes[0].carrier", ["isp1"]),
                 "outbound.routes[0].carrier: unknown key; did you mean carriers? allowed keys are domains, channels, "
                 "carriers", id="unknown-route-key"),
    pytest.param(site_with("channels.orders.selector", "x"),
                 "outbound.channels.orders.selector: unknown key; did you mean dkim_selector? allowed keys are "
                 "dkim_selector, signing_domain, bounce_domain, submission_port, process_limit",
                 id="unknown-channel-key"),
    pytest.param(site_with("accounts.shop.quota", 5),
                 "outbound.accounts.shop.quota: unknown key; did you mean daily_quota? allowed keys are channel, "
                 "senders, daily_quota, rate_per_minute", id="unknown-account-key"),
    # -- carriers
    pytest.param(site_with("carriers.ISP 1", {"type": "relay", "host": "smtp.isp1.example"}),
                 f'outbound.carriers.ISP 1: "ISP 1" is not a valid carrier name; {NAME_FIX}isp1', id="carrier-name"),
    pytest.param(site_with("carriers.isp1.type", "smarthost"),
                 'outbound.carriers.isp1.type: "smarthost" is not a carrier type; use direct (delivery to each '
                 "recipient domain's MX) or relay (through a provider's host)", id="carrier-type"),
    pytest.param(site_with("carriers.direct", {"type": "relay", "host": "smtp.isp3.example"}),
                 "outbound.carriers.direct.type: \"direct\" is the name of the built-in delivery to the recipients' "
                 "MX; give the relay another name, e.g. isp1", id="relay-named-direct"),
    pytest.param(site_with("carriers.direct", {"host": "smtp.isp3.example"}),
                 "outbound.carriers.direct.host: is only used with type relay; remove it, or set type: relay",
                 id="host-of-a-direct-carrier"),
    pytest.param(site_with("carriers.isp1.mta_sts", True),
                 "outbound.carriers.isp1.mta_sts: is only used with type direct, since a relay is held to its own "
                 "tls: setting; remove it (tls: verify has the relay's certificate checked)", id="mta-sts-on-a-relay"),
    pytest.param(site_with("carriers.direct", {"mta_sts": "yes"}),
                 'outbound.carriers.direct.mta_sts: "yes" is not true or false; ' + MTA_STS_FIX, id="mta-sts-not-bool"),
    pytest.param(site_with("carriers.direct", {"mta_sts": 1}),
                 "outbound.carriers.direct.mta_sts: 1 is not true or false; " + MTA_STS_FIX, id="mta-sts-number"),
    pytest.param(site_with("carriers.isp1.host", DELETE),
                 "outbound.carriers.isp1.host: is required; give the relay's DNS name or IP address, "
                 "e.g. smtp.isp1.example", id="relay-without-host"),
    pytest.param(site_with("carriers.isp1.host", "smtp isp1"),
                 'outbound.carriers.isp1.host: "smtp isp1" is not a DNS name or IP address; give the relay\'s DNS name '
                 "or IP address, e.g. smtp.isp1.example", id="relay-host-syntax"),
    pytest.param(site_with("carriers.isp1.port", 0),
                 "outbound.carriers.isp1.port: 0 is out of range; use a port from 1 to 65535, e.g. 587",
                 id="relay-port"),
    pytest.param(site_with("carriers.isp1.username", "acme:relay"),
                 'outbound.carriers.isp1.username: "acme:relay" is not a valid relay login; give the login your '
                 "provider issued (letters, digits and . _ % + = @ -), e.g. acme-relay; its password goes into the "
                 "vault, never into the site file", id="relay-username-colon"),
    pytest.param(site_with("carriers.isp1.tls", "none"),
                 f'outbound.carriers.isp1.tls: "none" is not a TLS mode, and the SASL login must never cross the '
                 f"network in clear; {TLS_FIX}", id="sasl-without-tls"),
    pytest.param(site_with("carriers.isp1.tls", False),
                 "outbound.carriers.isp1.tls: false is not a TLS mode, and the SASL login must never cross the "
                 f"network in clear; {TLS_FIX}", id="sasl-with-tls-false"),
    pytest.param(site_with("carriers.isp2.tls", "may"),
                 f'outbound.carriers.isp2.tls: "may" is not a TLS mode; {TLS_FIX}', id="relay-without-tls"),
    pytest.param(site_with("carriers.isp2.host", "198.51.100.25"),
                 "outbound.carriers.isp2.tls: verify checks the relay's certificate against its host name, but host "
                 "is an IP address; give host as the relay's DNS name, or use tls: encrypt", id="verify-an-ip"),
    pytest.param(site_with("carriers.isp1.source_address", "192.0.2.300"),
                 'outbound.carriers.isp1.source_address: "192.0.2.300" is not an IP address; give one of the '
                 "appliance's own IP addresses to send from, e.g. 192.0.2.11", id="source-address"),
    pytest.param(site_with("carriers.isp1.source_address", "127.0.0.1"),
                 'outbound.carriers.isp1.source_address: "127.0.0.1" is a loopback, link-local, multicast or '
                 "unspecified address; give one of the appliance's own IP addresses to send from, e.g. 192.0.2.11",
                 id="source-address-loopback"),
    pytest.param(site_with("carriers.isp1.helo_name", "out"),
                 'outbound.carriers.isp1.helo_name: "out" is not a fully qualified domain name; give the full DNS '
                 "name the source address's PTR record names, e.g. bulk.example.com", id="helo-name"),
    pytest.param(site_with("carriers.isp1.spf", ISP1_SPF),
                 f'outbound.carriers.isp1.spf: expected a list, got "{ISP1_SPF}"; {SPF_FIX}', id="spf-not-a-list"),
    pytest.param(site_with("carriers.isp1.spf", [ISP1_SPF, "~all"]),
                 f'outbound.carriers.isp1.spf[1]: "~all" is not an SPF mechanism the appliance publishes; {SPF_FIX}',
                 id="spf-all-term"),
    pytest.param(site_with("carriers.isp1.spf", ["redirect=_spf.isp1.example"]),
                 'outbound.carriers.isp1.spf[0]: "redirect=_spf.isp1.example" is not an SPF mechanism the appliance '
                 f"publishes; {SPF_FIX}", id="spf-redirect"),
    pytest.param(site_with("carriers.isp1.spf", ["-include:_spf.isp1.example"]),
                 'outbound.carriers.isp1.spf[0]: "-include:_spf.isp1.example" is not an SPF mechanism the appliance '
                 f"publishes; {SPF_FIX}", id="spf-qualifier"),
    pytest.param(site_with("carriers.isp1.spf", ["include:_spf.isp1.example +all"]),
                 'outbound.carriers.isp1.spf[0]: "include:_spf.isp1.example +all" is not an SPF mechanism the '
                 f"appliance publishes; {SPF_FIX}", id="spf-second-term"),
    pytest.param(site_with("carriers.isp1.spf", ["include:%{i}._spf.isp1.example"]),
                 'outbound.carriers.isp1.spf[0]: "include:%{i}._spf.isp1.example" is not an SPF mechanism the '
                 f"appliance publishes; {SPF_FIX}", id="spf-macro"),
    pytest.param(site_with("carriers.isp1.spf", ["mx:isp1.example"]),
                 f'outbound.carriers.isp1.spf[0]: "mx:isp1.example" is not an SPF mechanism the appliance publishes; '
                 f"{SPF_FIX}", id="spf-mx"),
    pytest.param(site_with("carriers.isp1.spf", ["ip4:198.51.100.300"]),
                 'outbound.carriers.isp1.spf[0]: "ip4:198.51.100.300" does not name an IPv4 address or network; '
                 f"{SPF_FIX}", id="spf-ip4-syntax"),
    pytest.param(site_with("carriers.isp1.spf", ["ip6:198.51.100.0/24"]),
                 'outbound.carriers.isp1.spf[0]: "ip6:198.51.100.0/24" does not name an IPv6 address or network; '
                 f"{SPF_FIX}", id="spf-ip6-of-an-ipv4-network"),
    pytest.param(site_with("carriers.isp1.spf", ["ip4:0.0.0.0/0"]),
                 'outbound.carriers.isp1.spf[0]: "ip4:0.0.0.0/0" is every address; name the provider\'s networks; '
                 "this one lets any host on the internet send as the site's domains", id="spf-every-address"),
    pytest.param(site_with("carriers.isp1.spf", ["ip4:198.51.100.7/24"]),
                 'outbound.carriers.isp1.spf[0]: "ip4:198.51.100.7/24" has host bits set beyond /24; write '
                 "ip4:198.51.100.0/24", id="spf-host-bits"),
    pytest.param(site_with("carriers.isp1.spf", [ISP1_SPF, "Include:_SPF.isp1.example"]),
                 'outbound.carriers.isp1.spf[1]: "Include:_SPF.isp1.example" is already listed at '
                 "outbound.carriers.isp1.spf[0]; list each mechanism once", id="spf-twice"),
    pytest.param(site_with("carriers.isp1.spf", [f"ip4:198.51.100.{n}" for n in range(11)]),
                 "outbound.carriers.isp1.spf: lists 11 mechanisms; list at most 10; a provider's include: covers all "
                 "its hosts", id="spf-too-many"),
    pytest.param(site_with("carriers.direct", {"spf": ["ip4:192.0.2.11"]}),
                 "outbound.carriers.direct.spf: is only used with type relay; remove it, or set type: relay",
                 id="spf-of-a-direct-carrier"),
    pytest.param(site_with("carriers.isp1.spf", [f"include:_spf{n}.isp1.example" for n in range(10)]),
                 ELEVEN_LOOKUPS, id="spf-over-the-lookup-limit"),
    pytest.param(site_with("carriers.isp1.limits", {"concurrency_per_destination": 0}),
                 "outbound.carriers.isp1.limits.concurrency_per_destination: 0 is out of range; use a whole number of "
                 "connections from 1 to 100, e.g. 20", id="concurrency"),
    pytest.param(site_with("carriers.isp1.limits", {"messages_per_minute": "fast"}),
                 'outbound.carriers.isp1.limits.messages_per_minute: "fast" is not a whole number; use a whole number '
                 "of messages (Postfix spaces deliveries by whole seconds; limit faster carriers with "
                 "concurrency_per_destination) from 1 to 60, e.g. 30", id="messages-per-minute"),
    # -- route loops: a relay that is the appliance itself
    pytest.param(site_with("carriers.isp1.host", "mail.alpha.test"),
                 'outbound.carriers.isp1.host: "mail.alpha.test" is the appliance itself (hostname); ' + LOOP_FIX,
                 id="relay-to-the-appliance"),
    pytest.param(site_with("carriers.isp1.host", "Beta.test"),
                 'outbound.carriers.isp1.host: "Beta.test" is a domain the appliance hosts (its MX is the appliance); '
                 + LOOP_FIX, id="relay-to-a-hosted-domain"),
    pytest.param(site_with("carriers.isp1.host", "mta-sts.alpha.test"),
                 'outbound.carriers.isp1.host: "mta-sts.alpha.test" is a name `mailappliance dns plan` points at the '
                 "appliance; " + LOOP_FIX, id="relay-to-a-planned-name"),
    pytest.param(site_with("carriers.isp2", {"type": "relay", "host": "192.0.2.10", "tls": "encrypt"},
                           host={"address": "192.0.2.10"}),
                 'outbound.carriers.isp2.host: "192.0.2.10" is the appliance\'s own address; ' + LOOP_FIX,
                 id="relay-to-the-appliance-address"),
    pytest.param(site_with("carriers.isp2", {"type": "relay", "host": "::1", "tls": "encrypt"}),
                 'outbound.carriers.isp2.host: "::1" is a loopback, link-local, multicast or unspecified address; '
                 "give the relay's DNS name or IP address, e.g. smtp.isp1.example", id="relay-to-loopback"),
    # -- channels
    pytest.param(site_with("channels.staff", {"submission_port": 2525}),
                 "outbound.channels.staff.submission_port: staff is the appliance's own path (port 25, submission on "
                 "587 and 465) and takes no settings; remove them; give a dedicated channel another name, e.g. orders",
                 id="staff-with-settings"),
    pytest.param(site_with("channels.Orders", {"signing_domain": "alpha.test", "submission_port": 2589}),
                 f'outbound.channels.Orders: "Orders" is not a valid channel name; {NAME_FIX}orders',
                 id="channel-name"),
    pytest.param(site_with("channels.orders.signing_domain", "outside.example"),
                 'outbound.channels.orders.signing_domain: "outside.example" is not one of the site\'s domains; use '
                 "one of the site's domains (alpha.test, beta.test); it signs with a DKIM key published for it",
                 id="signing-domain-not-hosted"),
    pytest.param(site_with("channels.orders.signing_domain", DELETE),
                 "outbound.channels.orders.signing_domain: is required; use one of the site's domains (alpha.test, "
                 "beta.test); it signs with a DKIM key published for it", id="signing-domain-missing"),
    pytest.param(site_with("channels.orders.bounce_domain", "bounces.outside.example"),
                 'outbound.channels.orders.bounce_domain: "bounces.outside.example" is not one of the site\'s '
                 "domains; use one of the site's domains (alpha.test, beta.test); bounces to the Return-Path come "
                 "back to it", id="bounce-domain-not-hosted"),
    pytest.param(site_with("channels.orders.dkim_selector", "mail"),
                 "outbound.channels.orders.dkim_selector: mail._domainkey.alpha.test is already the DKIM key of "
                 "domains[0].dkim_selector; give the channel a selector of its own (each channel signs with a key of "
                 "its own)", id="dkim-key-of-the-domain"),
    pytest.param(site_with("channels.bulk", {"dkim_selector": "orders", "signing_domain": "alpha.test",
                                             "submission_port": 2588}),
                 "outbound.channels.bulk.dkim_selector: orders._domainkey.alpha.test is already the DKIM key of "
                 "outbound.channels.orders.dkim_selector; give the channel a selector of its own (each channel signs "
                 "with a key of its own)", id="dkim-key-of-another-channel"),
    pytest.param(site_with("channels.orders.dkim_selector", "orders.2026"),
                 'outbound.channels.orders.dkim_selector: "orders.2026" is not a valid DKIM selector; use lowercase '
                 "letters, digits and hyphens (a single DNS label), e.g. orders", id="dkim-selector"),
    pytest.param(site_with("channels.orders.submission_port", DELETE),
                 f"outbound.channels.orders.submission_port: is required; {PORT_FIX}", id="port-missing"),
    pytest.param(site_with("channels.orders.submission_port", 587),
                 f"outbound.channels.orders.submission_port: 587 is the appliance's port for staff submission; "
                 f"{PORT_FIX}", id="port-of-staff"),
    pytest.param(site_with("channels.orders.submission_port", 11334),
                 "outbound.channels.orders.submission_port: 11334 is the appliance's port for Rspamd's controller; "
                 f"{PORT_FIX}", id="port-of-rspamd"),
    pytest.param(site_with("channels.orders.submission_port", 2222, host={"address": "192.0.2.10", "port": 2222}),
                 "outbound.channels.orders.submission_port: 2222 is the port Ansible reaches the appliance on "
                 f"(host.port); {PORT_FIX}", id="port-of-ssh"),
    pytest.param(site_with("channels.orders.submission_port", 80),
                 "outbound.channels.orders.submission_port: 80 is out of range; use a port from 1024 to 65535, "
                 "e.g. 2587", id="privileged-port"),
    pytest.param(site_with("channels.bulk.submission_port", 2587),
                 "outbound.channels.bulk.submission_port: 2587 is already the submission port of "
                 f"outbound.channels.orders; {PORT_FIX}", id="duplicate-port"),
    pytest.param(site_with("channels.orders.process_limit", 5000),
                 "outbound.channels.orders.process_limit: 5000 is out of range; use a whole number of processes from "
                 "1 to 1000, e.g. 100", id="process-limit"),
    # -- accounts
    pytest.param(site_with("accounts.shop.channel", "invoices"),
                 f'outbound.accounts.shop.channel: "invoices" is not a channel of outbound.channels; '
                 f"{ACCOUNT_CHANNEL_FIX}", id="account-on-an-unknown-channel"),
    pytest.param(site_with("accounts.shop.channel", "staff"),
                 "outbound.accounts.shop.channel: staff is the mailboxes' own path; sending accounts send on a "
                 f"dedicated channel; {ACCOUNT_CHANNEL_FIX}", id="account-on-staff"),
    pytest.param(site_with("accounts.shop.channel", DELETE),
                 f"outbound.accounts.shop.channel: is required; {ACCOUNT_CHANNEL_FIX}", id="account-without-channel"),
    pytest.param(site_with("accounts.shop@alpha", {}),
                 f'outbound.accounts.shop@alpha: "shop@alpha" is not a valid account name; {NAME_FIX}shop',
                 id="account-name-with-at"),
    pytest.param(site_with("accounts.shop.senders", []),
                 "outbound.accounts.shop.senders: the list is empty; list the addresses it sends as, or @domain for "
                 "any address of a domain, e.g. [shop@example.com]", id="no-senders"),
    pytest.param(site_with("accounts.shop.senders", ["orders@alpha.test", "news@outside.example"]),
                 'outbound.accounts.shop.senders[1]: "news@outside.example" is not in one of the site\'s domains; '
                 "use the site's domains (alpha.test, beta.test); the appliance signs and publishes SPF only for them",
                 id="foreign-sender"),
    pytest.param(site_with("accounts.shop.senders", ["orders@alpha.test", "Orders@alpha.test"]),
                 'outbound.accounts.shop.senders[1]: "Orders@alpha.test" is already listed at '
                 "outbound.accounts.shop.senders[0]; list each sender once", id="duplicate-sender"),
    pytest.param(site_with("accounts.shop.senders", ["orders"]),
                 'outbound.accounts.shop.senders[0]: "orders" is not a valid sender; use local-part@domain with '
                 "letters, digits, dots, hyphens and underscores before the @, or @domain", id="sender-syntax"),
    pytest.param(site_with("accounts.shop.daily_quota", DELETE),
                 "outbound.accounts.shop.daily_quota: is required; use a whole number of recipients a day from 1 to "
                 "10,000,000, e.g. daily_quota: 50000", id="account-without-quota"),
    pytest.param(site_with("accounts.shop.daily_quota", 0),
                 "outbound.accounts.shop.daily_quota: 0 is out of range; use a whole number of recipients a day from 1 "
                 "to 10000000, e.g. 50000", id="quota-zero"),
    pytest.param(site_with("accounts.shop.rate_per_minute", -1),
                 "outbound.accounts.shop.rate_per_minute: -1 is out of range; use a whole number of messages a minute "
                 "from 1 to 60000, e.g. 600", id="negative-rate"),
    # -- routes
    pytest.param(site_with("routes[0].carriers", ["isp1", "isp3"]),
                 f'outbound.routes[0].carriers[1]: "isp3" is not a carrier; {CARRIER_FIX}', id="unknown-carrier"),
    pytest.param(site_with("routes[0].carriers", ["isp1", "isp2", "isp1"]),
                 'outbound.routes[0].carriers[2]: "isp1" is listed twice in this route; a fallback to the same '
                 "carrier retries what just failed; list each carrier once", id="carrier-twice"),
    pytest.param(site_with("carriers.isp2.port", 465),
                 "outbound.routes[0].carriers: mixes implicit TLS on port 465 (isp2) with STARTTLS carriers; Postfix "
                 "sets this per route, so the fallback could not be reached; give the route carriers of one kind (the "
                 "relay's STARTTLS port 587, or 465 for all), or split it into two routes", id="implicit-tls-mixed"),
    pytest.param(site_with("routes[0].carriers", ["isp1", "direct"]),
                 "outbound.routes[0].carriers: direct is a fallback here; Postfix falls back to fixed relay hosts "
                 "only, and direct delivery has none (each recipient domain's MX); put direct first, with relays as "
                 "its fallbacks, or leave it out of this route", id="direct-as-fallback"),
    pytest.param(site_with("routes[0].carriers", []),
                 f"outbound.routes[0].carriers: the list is empty; {CARRIER_FIX}", id="no-carriers"),
    pytest.param(site_with("routes[0].carriers", "isp1"),
                 f'outbound.routes[0].carriers: expected a list of carrier names, got "isp1"; {CARRIER_FIX}',
                 id="carriers-not-a-list"),
    pytest.param(site_with("routes[0].channels", []),
                 f"outbound.routes[0].channels: the list is empty; {CHANNEL_FIX}", id="empty-channels"),
    pytest.param(site_with("routes[0].carriers", DELETE),
                 f"outbound.routes[0].carriers: is required; {CARRIER_FIX}", id="carriers-missing"),
    pytest.param(site_with("routes[0].channels", ["orders", "marketing"]),
                 f'outbound.routes[0].channels[1]: "marketing" is not a channel; {CHANNEL_FIX}', id="unknown-channel"),
    pytest.param(site_with("routes[0].channels", ["orders", "orders"]),
                 'outbound.routes[0].channels[1]: "orders" is listed twice in this route; each channel is listed '
                 "once; list each channel once", id="channel-twice"),
    pytest.param(site_with("routes[0].domains", DELETE),
                 'outbound.routes[0].domains: is required; give a domain name (example.de), a wildcard for every name '
                 'below a domain (*.example.de, *.de), "*" for every domain, or file:NAME for a list file next to the '
                 "site file", id="domains-missing"),
    pytest.param(site_with("routes[0].domains", ["example.*"]),
                 '''outbound.routes[0].domains[0]: "example.*" is not a domain name or wildcard; give a domain name '''
                 '''(example.de), a wildcard for every name below a domain (*.example.de, *.de), "*" for every '''
                 "domain, or file:NAME for a list file next to the site file", id="domain-syntax"),
    pytest.param(site_with("routes[0].domains", ["partner.example", "Alpha.test"]),
                 'outbound.routes[0].domains[1]: "Alpha.test" is a domain the appliance hosts; its mail is delivered '
                 'here and never leaves through a carrier; remove it from the route (wildcards and "*" never take '
                 "hosted domains out)", id="hosted-domain-routed-outward"),
    pytest.param(site_with("routes[0].domains", ["mail.alpha.test"]),
                 '''outbound.routes[0].domains[0]: "mail.alpha.test" is the appliance's own name; its mail is '''
                 '''delivered here and never leaves through a carrier; remove it from the route (wildcards and "*" '''
                 "never take hosted domains out)", id="hostname-routed-outward"),
    pytest.param(site_with("routes[0].domains", ["partner.example", "Partner.example"]),
                 'outbound.routes[0].domains[1]: "Partner.example" is listed twice in this route (also at '
                 '"partner.example" of outbound.routes[0].domains[0]); list each domain once', id="domain-twice"),
    pytest.param(site_with("routes", [OUTBOUND["routes"][0], OUTBOUND["routes"][0]]),
                 "outbound.routes[1]: every domain of this route is already routed for its channels by "
                 "outbound.routes[0], so it never applies; remove it, or move it above the routes that take its "
                 "domains", id="duplicate-route"),
    pytest.param(site_with("routes", [{"domains": ["*.example.de"], "carriers": ["isp1"]},
                                      {"domains": ["shop.example.de", "example.de"], "carriers": ["isp2"]}]),
                 'outbound.routes[1].domains[0]: "shop.example.de" is already routed by "*.example.de" in '
                 "outbound.routes[0] for channels staff, orders, bulk, so this route never applies to it there; move "
                 "this route above outbound.routes[0], or leave staff, orders, bulk out of its channels",
                 id="hidden-by-a-wildcard"),
    pytest.param(site_with("routes", [{"domains": ["*"], "channels": ["bulk"], "carriers": ["isp1"]},
                                      {"domains": ["*.de"], "carriers": ["isp2"]}]),
                 'outbound.routes[1].domains[0]: "*.de" is already routed by "*" in outbound.routes[0] for channel '
                 "bulk, so this route never applies to it there; move this route above outbound.routes[0], or leave "
                 "bulk out of its channels", id="hidden-for-one-channel"),
    pytest.param(site_with("routes", {"domains": ["*"]}),
                 'outbound.routes: expected a list, got a mapping; list routes, e.g. routes: [{domains: ["*"], '
                 "carriers: [isp1, isp2]}]", id="routes-not-a-list"),
]


@pytest.mark.parametrize(("data", "message"), BAD_OUTBOUND)
def test_each_outbound_mistake_gives_one_located_message(site_dir: Path, data: dict, message: str) -> None:
    assert errors_of(site_dir, data) == [message]


def test_a_carrier_named_twice_is_a_repeated_key(site_dir: Path) -> None:
    text = yaml.safe_dump(MINIMAL_SITE, sort_keys=False) + (
        "outbound:\n  carriers:\n    isp1: {type: relay, host: smtp.isp1.example}\n"
        "    isp1: {type: relay, host: smtp.isp3.example}\n")
    assert errors_of(site_dir, text) == [
        'line 15: key "isp1" appears again (first at line 14); keep only one of them']


def test_an_invalid_carrier_is_not_reported_again_where_routes_name_it(site_dir: Path) -> None:
    assert errors_of(site_dir, site_with("carriers.isp1.port", "smtp")) == [
        'outbound.carriers.isp1.port: "smtp" is not a whole number; use a port from 1 to 65535, e.g. 587']


def test_outbound_problems_are_reported_in_file_order(site_dir: Path) -> None:
    data = site_with("accounts.shop.channel", "nope")
    data["outbound"]["routes"][0]["carriers"] = ["isp9"]
    data["outbound"]["carriers"]["isp2"]["port"] = 0
    data["outbound"]["channels"]["bulk"]["submission_port"] = 25
    # OUTBOUND lists carriers, routes, channels, accounts; the checks run in another order.
    assert [line.split(":")[0] for line in errors_of(site_dir, data)] == [
        "outbound.carriers.isp2.port", "outbound.routes[0].carriers[0]", "outbound.channels.bulk.submission_port",
        "outbound.accounts.shop.channel"]


# -- hostile strings ------------------------------------------------------------------------------------------

HOSTILE = [
    pytest.param("routes[0].domains", ["partner.example\nrelayhost = [evil.example]"],
                 'outbound.routes[0].domains[0]: "partner.example\\nrelayhost = [evil.example]" contains a line break '
                 "(U+000A); ", id="route-domain"),
    pytest.param("accounts.shop.channel", "orders\r\n",
                 'outbound.accounts.shop.channel: "orders\\r\\n" contains a carriage return (U+000D); ',
                 id="account-channel"),
    pytest.param("carriers.isp1.username", "acme\u2028smtp_sasl_auth_enable = no",
                 'outbound.carriers.isp1.username: "acme\\u2028smtp_sasl_auth_enable = no" contains a line separator '
                 "(U+2028); ", id="relay-username"),
    pytest.param("carriers.isp1.host", "smtp.isp1.example\x00",
                 'outbound.carriers.isp1.host: "smtp.isp1.example\\u0000" contains a NUL character (U+0000); ',
                 id="relay-host"),
    pytest.param("channels.orders.dkim_selector", "orders\t",
                 'outbound.channels.orders.dkim_selector: "orders\\t" contains a tab (U+0009); ', id="selector"),
    pytest.param("carriers.isp1.spf", ["include:_spf.isp1.example\nv=spf1 +all"],
                 'outbound.carriers.isp1.spf[0]: "include:_spf.isp1.example\\nv=spf1 +all" contains a line break '
                 "(U+000A); ", id="relay-spf"),
    pytest.param("carriers.isp\n1", {"type": "relay", "host": "smtp.isp1.example"},
                 'outbound.carriers.isp\\u000a1: "isp\\n1" contains a line break (U+000A); ', id="carrier-name"),
]


@pytest.mark.parametrize(("path", "value", "start"), HOSTILE)
def test_hostile_strings_are_refused_on_one_line(site_dir: Path, path: str, value: object, start: str) -> None:
    errors = errors_of(site_dir, site_with(path, value))
    assert len(errors) == 1 and errors[0].startswith(start), errors
    assert not any(is_unsafe_char(char) for char in errors[0])


# -- domain list files ------------------------------------------------------------------------------------------

LIST_FIX = "write one domain name or *.wildcard per line (# starts a comment line), e.g. *.example.de"


def with_list(site_dir: Path, content: str | bytes, entry: str = "file:overseas.txt") -> dict:
    path = site_dir / "overseas.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return site_with("routes", [{"domains": ["partner.example", entry], "carriers": ["isp2"]},
                                *OUTBOUND["routes"]])


def test_a_list_file_is_expanded_in_place(site_dir: Path) -> None:
    data = with_list(site_dir, "# abroad\n\n*.DE\nshop.example.fr\n*.co.uk")
    outbound = load_site(write_site(site_dir, data)).outbound
    assert outbound is not None
    assert outbound.routes[0].domains == ("partner.example", "*.de", "shop.example.fr", "*.co.uk")


LIST_MISTAKES = [
    pytest.param("*.de\nex ample.fr\n",
                 [f'outbound.routes[0].domains[1]: "overseas.txt" line 2: "ex ample.fr" is not a domain name or '
                  f"wildcard; {LIST_FIX}"], id="bad-line"),
    pytest.param("*.de\r\n*.fr\r\n",
                 [f'outbound.routes[0].domains[1]: "overseas.txt" line {n}: "{d}\\r" contains a carriage return '
                  f"(U+000D); {LIST_FIX}" for n, d in ((1, "*.de"), (2, "*.fr"))], id="crlf-line-ends"),
    pytest.param("*.de\n*.fr\u2028relayhost = evil\n",
                 ['outbound.routes[0].domains[1]: "overseas.txt" line 2: "*.fr\\u2028relayhost = evil" contains a '
                  f"line separator (U+2028); {LIST_FIX}"], id="line-separator"),
    pytest.param(" *.de\n",
                 [f'outbound.routes[0].domains[1]: "overseas.txt" line 1: " *.de" has whitespace at its start or end; '
                  f"{LIST_FIX}"], id="indented-line"),
    pytest.param("*\n",
                 [f'outbound.routes[0].domains[1]: "overseas.txt" line 1: "*" is not a domain name or wildcard; '
                  f"{LIST_FIX}"], id="catch-all-in-a-file"),
    pytest.param("*.de\nbeta.test\n",
                 ['outbound.routes[0].domains[1]: "overseas.txt" line 2: "beta.test" is a domain the appliance hosts; '
                  'its mail is delivered here and never leaves through a carrier; remove it from the route (wildcards '
                  'and "*" never take hosted domains out)'], id="hosted-domain-in-a-file"),
    pytest.param("# nothing yet\n\n",
                 [f'outbound.routes[0].domains[1]: "overseas.txt" lists no domains; {LIST_FIX}'], id="empty-list"),
    pytest.param(b"*.de\n\xff.fr\n",
                 ['outbound.routes[0].domains[1]: "overseas.txt" line 2 is not UTF-8 text; save the file as UTF-8 '
                  "text"], id="not-utf8"),
    pytest.param("partner.example\n",
                 ['outbound.routes[0].domains[1]: "overseas.txt" line 1: "partner.example" is listed twice in this '
                  'route (also at "partner.example" of outbound.routes[0].domains[0]); list each domain once'],
                 id="same-domain-inline-and-in-the-file"),
]


@pytest.mark.parametrize(("content", "messages"), LIST_MISTAKES)
def test_every_line_of_a_list_file_is_checked(site_dir: Path, content: str | bytes, messages: list[str]) -> None:
    assert errors_of(site_dir, with_list(site_dir, content)) == messages


def test_a_missing_list_file_is_one_line(site_dir: Path) -> None:
    data = with_list(site_dir, "*.de\n", "file:abroad.txt")
    assert errors_of(site_dir, data) == [
        'outbound.routes[0].domains[1]: "abroad.txt" does not exist; give a path relative to the site file\'s folder']


def test_many_bad_lines_are_cut_short(site_dir: Path) -> None:
    errors = errors_of(site_dir, with_list(site_dir, "".join(f"bad_{n}.de\n" for n in range(30))))
    assert len(errors) == 21
    assert all("is not a domain name or wildcard" in line for line in errors[:20])
    assert errors[20] == ('outbound.routes[0].domains[1]: more bad lines in "overseas.txt" than the 20 shown; fix '
                          "those and validate again")


def test_an_oversized_list_file_is_not_read(site_dir: Path) -> None:
    data = with_list(site_dir, "*.de\n" * 300_000)
    assert errors_of(site_dir, data) == [
        'outbound.routes[0].domains[1]: "overseas.txt" is larger than 1 MiB; a domain list is text of one domain a '
        "line; check that this is the right file"]


# -- the appliance's own ports --------------------------------------------------------------------------------

def test_channel_ports_avoid_every_port_a_role_listens_on() -> None:
    """APPLIANCE_PORTS names each fixed port in the roles' defaults; a role that adds a listener adds it there."""
    ports = {int(port) for path in (PROJECT_DIR / "roles").glob("*/defaults/main.yml")
             for port in re.findall(r"^\w+__\w*port: (\d+)\s*$", path.read_text(), re.MULTILINE)}
    assert ports and ports <= set(APPLIANCE_PORTS)


def test_the_readme_shows_the_tested_outbound_section() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(outbound:\n.*?)```", readme, re.DOTALL)
    assert len(blocks) == 1, "README.md should show one ```yaml block starting with outbound:"
    assert yaml.safe_load(blocks[0]) == {"outbound": yaml.safe_load(OUTBOUND_SITE)["outbound"]}
