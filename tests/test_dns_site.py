"""The site file's optional dns: section: defaults drawn from the rest of the site, one located message per mistake."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from conftest import MINIMAL_SITE, write_site
from mailappliance.errors import UserError
from mailappliance.site import Dns, load_site


def site_with(dns: object = None, **changes: object) -> dict:
    data = copy.deepcopy(MINIMAL_SITE)
    data.update(changes)
    if dns is not None:
        data["dns"] = dns
    return data


def test_defaults_come_from_the_rest_of_the_site(site_dir: Path) -> None:
    site = load_site(write_site(site_dir, site_with(host={"address": "192.0.2.10"})))
    assert site.dns == Dns(ttl=3600, dmarc_policy="quarantine", dmarc_rua="admin@outside.example",
                           tlsrpt_rua="admin@outside.example", mta_sts_mode="enforce", mta_sts_max_age=604800,
                           ipv4="192.0.2.10", ipv6="")


def test_an_ipv6_host_address_is_the_default_ipv6(site_dir: Path) -> None:
    site = load_site(write_site(site_dir, site_with(host={"address": "2001:DB8::10"})))
    assert (site.dns.ipv4, site.dns.ipv6) == ("", "2001:db8::10")


@pytest.mark.parametrize("host", [{"address": "mail.alpha.test"}, {"connection": "podman", "address": "demo"},
                                  {"address": "127.0.0.1"}])
def test_no_address_default_from_a_name_a_container_or_loopback(site_dir: Path, host: dict) -> None:
    site = load_site(write_site(site_dir, site_with(host=host)))
    assert (site.dns.ipv4, site.dns.ipv6) == ("", "")


def test_every_key_set(site_dir: Path) -> None:
    site = load_site(write_site(site_dir, site_with(
        dns={"ttl": 300, "dmarc_policy": "reject", "dmarc_rua": "mailto:Reports@Alpha.test",
             "tlsrpt_rua": "tls@outside.example", "mta_sts_mode": "testing", "mta_sts_max_age": 86400,
             "ipv4": "198.51.100.7", "ipv6": "2001:db8::7"},
        aliases=[{"address": "reports@alpha.test", "to": ["alice@alpha.test"]}],
    )))
    assert site.dns == Dns(ttl=300, dmarc_policy="reject", dmarc_rua="reports@alpha.test",
                           tlsrpt_rua="tls@outside.example", mta_sts_mode="testing", mta_sts_max_age=86400,
                           ipv4="198.51.100.7", ipv6="2001:db8::7")


BAD_DNS = [
    pytest.param({"dmarc_policy": "none"},
                 'dns.dmarc_policy: "none" only asks for reports and lets receivers deliver mail forged in the '
                 "site's domains; use quarantine or reject", id="dmarc-none"),
    pytest.param({"dmarc_policy": "strict"},
                 'dns.dmarc_policy: "strict" is not a DMARC policy; use quarantine or reject', id="dmarc-policy"),
    pytest.param({"dmarc_rua": "reports"},
                 'dns.dmarc_rua: "reports" is not a valid email address; give the address that receives the '
                 "reports, e.g. dmarc-reports@example.com", id="dmarc-rua-syntax"),
    pytest.param({"dmarc_rua": "dmarc@alpha.test"},
                 'dns.dmarc_rua: "dmarc@alpha.test" is in a declared domain but is neither a mailbox nor an alias; '
                 "add that mailbox or alias, or use another address", id="dmarc-rua-undefined"),
    pytest.param({"tlsrpt_rua": ["tls@outside.example"]},
                 "dns.tlsrpt_rua: a list is not a valid email address; give the address that receives the "
                 "reports, e.g. dmarc-reports@example.com", id="tlsrpt-rua-list"),
    pytest.param({"mta_sts_mode": "none"},
                 'dns.mta_sts_mode: "none" withdraws the MTA-STS policy, so senders stop requiring TLS; use '
                 "enforce, or testing while TLS-RPT reports are reviewed", id="mta-sts-none"),
    pytest.param({"mta_sts_mode": "Enforce"},
                 'dns.mta_sts_mode: "Enforce" is not an MTA-STS mode; use enforce or testing', id="mta-sts-mode"),
    pytest.param({"mta_sts_max_age": 31557601},
                 "dns.mta_sts_max_age: 31557601 is out of range; use a whole number of seconds (RFC 8461 allows "
                 "at most a year) from 86400 to 31557600, e.g. 604800", id="mta-sts-max-age"),
    pytest.param({"ttl": "1h"},
                 'dns.ttl: "1h" is not a whole number; use a whole number of seconds from 60 to 604800, e.g. 3600',
                 id="ttl-text"),
    pytest.param({"ttl": 5},
                 "dns.ttl: 5 is out of range; use a whole number of seconds from 60 to 604800, e.g. 3600",
                 id="ttl-range"),
    pytest.param({"ipv4": "2001:db8::1"},
                 'dns.ipv4: "2001:db8::1" is not an IPv4 address; give the address the internet reaches the '
                 "appliance at, e.g. ipv4: 192.0.2.10", id="ipv4-family"),
    pytest.param({"ipv6": "fe80::1"},
                 'dns.ipv6: "fe80::1" is a loopback, link-local, multicast or unspecified address; give the '
                 "address the internet reaches the appliance at, e.g. ipv6: 2001:db8::10", id="ipv6-link-local"),
    pytest.param({"ipv4": "192.0.2.300"},
                 'dns.ipv4: "192.0.2.300" is not an IPv4 address; give the address the internet reaches the '
                 "appliance at, e.g. ipv4: 192.0.2.10", id="ipv4-syntax"),
    pytest.param({"spf": "v=spf1 -all"},
                 "dns.spf: unknown key; allowed keys are ttl, dmarc_policy, dmarc_rua, tlsrpt_rua, mta_sts_mode, "
                 "mta_sts_max_age, ipv4, ipv6, resolvers, dnssec_validation, air_gapped", id="unknown-key"),
    pytest.param({"ip4": "192.0.2.1"},
                 "dns.ip4: unknown key; did you mean ipv4? allowed keys are ttl, dmarc_policy, dmarc_rua, tlsrpt_rua, "
                 "mta_sts_mode, mta_sts_max_age, ipv4, ipv6, resolvers, dnssec_validation, air_gapped", id="unknown-key-close"),
    pytest.param({"resolvers": "192.0.2.53"},
                 'dns.resolvers: expected a list, got "192.0.2.53"; list the IP addresses of your resolvers, e.g. '
                 "[192.0.2.53, 2001:db8::53], or leave dns.resolvers out", id="resolvers-not-a-list"),
    pytest.param({"resolvers": ["dns.example.com"]},
                 'dns.resolvers[0]: "dns.example.com" is not an IP address; list the IP addresses of your resolvers, '
                 "e.g. [192.0.2.53, 2001:db8::53], or leave dns.resolvers out", id="resolvers-name"),
    pytest.param({"resolvers": ["127.0.0.1"]},
                 "dns.resolvers[0]: 127.0.0.1 is not a resolver the appliance can forward to (its own Unbound listens "
                 "on loopback); list the IP addresses of your resolvers, e.g. [192.0.2.53, 2001:db8::53], or leave "
                 "dns.resolvers out", id="resolvers-loopback"),
    pytest.param({"resolvers": ["192.0.2.53", "192.0.2.053"]},
                 'dns.resolvers[1]: "192.0.2.053" is not an IP address; list the IP addresses of your resolvers, '
                 "e.g. [192.0.2.53, 2001:db8::53], or leave dns.resolvers out", id="resolvers-leading-zero"),
    pytest.param({"resolvers": ["2001:db8::53", "2001:DB8::53"]},
                 "dns.resolvers[1]: 2001:db8::53 is listed twice; list each resolver once", id="resolvers-twice"),
    pytest.param({"resolvers": [f"192.0.2.{n}" for n in range(1, 10)]},
                 "dns.resolvers: lists 9 resolvers; list at most 8", id="resolvers-too-many"),
    pytest.param({"air_gapped": "yes"},
                 'dns.air_gapped: "yes" is not true or false; use true (no query leaves for the internet: only the '
                 'listed resolvers are asked, and without any every name outside the appliance is answered "does '
                 'not exist") or false', id="air-gapped-text"),
    pytest.param({"dnssec_validation": 1},
                 "dns.dnssec_validation: 1 is not true or false; use true (answers must prove themselves with DNSSEC "
                 "where the zone is signed) or false (the resolvers strip DNSSEC records)", id="dnssec-number"),
    pytest.param("reject",
                 'dns: expected a mapping, got "reject"; write it as dns: {dmarc_policy: reject, ipv4: 192.0.2.10}',
                 id="not-a-mapping"),
]


@pytest.mark.parametrize(("dns", "message"), BAD_DNS)
def test_each_mistake_gives_one_located_message(site_dir: Path, dns: object, message: str) -> None:
    with pytest.raises(UserError) as caught:
        load_site(write_site(site_dir, site_with(dns=dns)))
    assert caught.value.lines == (f"site.yml: {message}",)
