"""`dns plan` and `dns check` of a site with an outbound: section: the channels' DKIM keys, SPF records that name
the carriers mail leaves through, and notes on relays without spf and on DMARC alignment. Checks run against Knot
on loopback, like tests/test_dns_live.py."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path

import pytest

import dnsfixtures
from clirunner import run_cli
from mailappliance import exit_codes
from mailappliance.dns.plan import build_plan
from mailappliance.dns.published import dkim_key_file, read_dkim_key
from mailappliance.site import load_site

APPLIANCE = f"ip4:{dnsfixtures.IPV4} ip6:{dnsfixtures.IPV6}"
# The relay's own SPF record, in a zone of the test server, so checkdmarc can follow the include.
RELAY_ZONE = "relay.test."
RELAY_SPF = ("_spf.relay.test.", "v=spf1 ip4:203.0.113.0/24 -all")
# isp1 gives its spf, isp2 does not; direct sends from an address of its own. orders (signing and bounces in
# alpha.test) leaves through isp1 and isp2; bulk (beta.test) and staff through the implied direct route.
OUTBOUND: dict = {
    "carriers": {
        "isp1": {"type": "relay", "host": "smtp.relay.test", "spf": ["include:_spf.relay.test", "ip4:198.51.100.0/24"]},
        "isp2": {"type": "relay", "host": "smtp2.relay.test"},
        "direct": {"source_address": "192.0.2.26"},
    },
    "routes": [{"domains": ["*"], "channels": ["orders"], "carriers": ["isp1", "isp2"]}],
    "channels": {
        "orders": {"signing_domain": "alpha.test", "submission_port": 2587},
        "bulk": {"dkim_selector": "bulk", "signing_domain": "beta.test", "submission_port": 2588},
    },
    "accounts": {
        "shop": {"channel": "orders", "senders": ["orders@alpha.test"], "daily_quota": 1000, "rate_per_minute": 60},
        "newsletter": {"channel": "bulk", "senders": ["@beta.test"], "daily_quota": 1000, "rate_per_minute": 60},
    },
}
ISP2_NOTE = ("mail relayed by isp2 fails SPF for alpha.test unless its senders are in the record; add "
             "outbound.carriers.isp2.spf as the provider documents it (or [] if the relay sends with a Return-Path of "
             "its own)")
ALIGNED = ("aligned here: the same domain or one below the other; relaxed alignment also takes two names below one "
           "registered domain, which is not told apart here")


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILAPPLIANCE_INVENTORY_ROOT", raising=False)
    return tmp_path / "inventories"


def site(**outbound: object) -> dict:
    """dnsfixtures.SITE with OUTBOUND, its top-level keys replaced by `outbound`."""
    data = copy.deepcopy(dnsfixtures.SITE)
    data["outbound"] = {**copy.deepcopy(OUTBOUND), **copy.deepcopy(outbound)}
    return data


def write_channel_keys(root: Path, bits: int = 2048) -> None:
    dnsfixtures.write_dkim_key(root, "alpha.test", "orders", bits)
    dnsfixtures.write_dkim_key(root, "beta.test", "bulk", bits)


def plan_json(root: Path) -> dict:
    result = run_cli("--inventory-root", str(root), "dns", "plan", "dnstest", "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def records(data: dict, purpose: str) -> dict[str, dict]:
    return {r["name"]: r for r in data["records"] if r["purpose"] == purpose}


# -- dns plan -------------------------------------------------------------------------------------------------

def test_channel_dkim_keys_are_pending_until_deploy_fetches_them(root: Path) -> None:
    dnsfixtures.write_site(root, site())
    published = dnsfixtures.published_dir(root)
    dkim = records(plan_json(root), "dkim")
    assert {name: (r["group"], r["pending"]) for name, r in dkim.items()} == {
        f"{selector}._domainkey.{domain}.": (
            domain, f"no DKIM key at {published}/dkim/{domain}.{selector}.pub yet; deploy first, which fetches it")
        for domain, selector in (("alpha.test", "mail"), ("alpha.test", "orders"), ("beta.test", "s2025"),
                                 ("beta.test", "bulk"))}


def test_channel_dkim_records_come_from_the_fetched_keys(root: Path) -> None:
    dnsfixtures.write_site(root, site())
    dnsfixtures.write_published(root)
    write_channel_keys(root)
    data = plan_json(root)
    # Each domain's own key first, then the channels' that sign for it, all in the domain's group.
    assert [(r["name"], r["group"]) for r in data["records"] if r["purpose"] == "dkim"] == [
        ("mail._domainkey.alpha.test.", "alpha.test"), ("orders._domainkey.alpha.test.", "alpha.test"),
        ("s2025._domainkey.beta.test.", "beta.test"), ("bulk._domainkey.beta.test.", "beta.test")]
    key = read_dkim_key(dkim_key_file(dnsfixtures.published_dir(root), "alpha.test", "orders"))
    orders = records(data, "dkim")["orders._domainkey.alpha.test."]
    assert key is not None and (orders["value"], orders["pending"]) == (key.record, None)
    assert orders["value"].startswith("v=DKIM1; k=rsa; p=")


def test_a_weak_channel_key_is_noted(root: Path) -> None:
    dnsfixtures.write_site(root, site())
    dnsfixtures.write_published(root)
    dnsfixtures.write_dkim_key(root, "beta.test", "bulk", 1024)
    notes = plan_json(root)["notes"]
    weak = [note for note in notes if "bits" in note]
    assert weak == [f"{dnsfixtures.published_dir(root)}/dkim/beta.test.bulk.pub: the DKIM key has 1024 bits; "
                    "receivers treat RSA keys under 2048 bits as weak, generate a 2048-bit key"]


def test_a_key_named_twice_is_one_record(root: Path) -> None:
    """The site check refuses a channel whose key is a domain's or another channel's; should such a site reach the
    plan anyway, the key is still published once."""
    dnsfixtures.write_site(root, site())
    loaded = load_site(root / "dnstest" / "site.yml")
    assert loaded.outbound is not None
    orders, bulk = loaded.outbound.channels
    twice = dataclasses.replace(loaded, outbound=dataclasses.replace(loaded.outbound, channels=(
        dataclasses.replace(orders, dkim_selector="mail"), dataclasses.replace(bulk, signing_domain="alpha.test",
                                                                               dkim_selector="mail"))))
    plan = build_plan(twice, dnsfixtures.published_dir(root))
    assert [r.name for r in plan.by_purpose("dkim")] == ["mail._domainkey.alpha.test.", "s2025._domainkey.beta.test."]


def test_spf_names_the_carriers_of_each_return_path_domain(root: Path) -> None:
    dnsfixtures.write_site(root, site())
    data = plan_json(root)
    # alpha.test is the Return-Path domain of orders (isp1, isp2) and of staff mail (direct, from 192.0.2.26);
    # beta.test of bulk and staff (direct).
    assert {name: r["value"] for name, r in records(data, "spf").items()} == {
        "alpha.test.": f"v=spf1 {APPLIANCE} include:_spf.relay.test ip4:198.51.100.0/24 ip4:192.0.2.26 -all",
        "beta.test.": f"v=spf1 {APPLIANCE} ip4:192.0.2.26 -all",
    }
    # The HELO name is the appliance's own: relays greet with theirs.
    assert [r["value"] for r in data["records"] if r["purpose"] == "helo-spf"] == [f"v=spf1 {APPLIANCE} -all"]
    assert data["notes"] == [ISP2_NOTE]


def test_a_relay_with_an_empty_spf_adds_nothing_and_is_not_noted(root: Path) -> None:
    data = site()
    data["outbound"]["carriers"]["isp2"]["spf"] = []
    del data["outbound"]["carriers"]["direct"]
    dnsfixtures.write_site(root, data)
    planned = plan_json(root)
    assert records(planned, "spf")["alpha.test."]["value"] == (
        f"v=spf1 {APPLIANCE} include:_spf.relay.test ip4:198.51.100.0/24 -all")
    assert records(planned, "spf")["beta.test."]["value"] == f"v=spf1 {APPLIANCE} -all"
    assert planned["notes"] == []


def test_a_mechanism_two_carriers_share_is_written_once(root: Path) -> None:
    data = site()
    data["outbound"]["carriers"]["isp2"]["spf"] = ["ip4:198.51.100.0/24", "a:smtp2.relay.test"]
    dnsfixtures.write_site(root, data)
    assert records(plan_json(root), "spf")["alpha.test."]["value"] == (
        f"v=spf1 {APPLIANCE} include:_spf.relay.test ip4:198.51.100.0/24 a:smtp2.relay.test ip4:192.0.2.26 -all")


def test_the_bounce_domain_gets_the_channels_carriers_and_keeps_its_mx(root: Path) -> None:
    """Bounces to a channel's Return-Path come back through the bounce domain's MX: a site domain, so the plan
    gives it the appliance as MX; SPF is checked against it, so its record names the channel's carriers."""
    data = site()
    data["outbound"]["channels"]["orders"]["bounce_domain"] = "beta.test"
    dnsfixtures.write_site(root, data)
    planned = plan_json(root)
    assert records(planned, "mx")["beta.test."]["value"] == f"10 {dnsfixtures.HOSTNAME}."
    assert {name: r["value"] for name, r in records(planned, "spf").items()} == {
        "alpha.test.": f"v=spf1 {APPLIANCE} ip4:192.0.2.26 -all",
        "beta.test.": f"v=spf1 {APPLIANCE} include:_spf.relay.test ip4:198.51.100.0/24 ip4:192.0.2.26 -all",
    }
    assert planned["notes"][0] == ISP2_NOTE.replace("for alpha.test", "for beta.test")
    # orders' From (alpha.test) is signed for alpha.test but bounces in beta.test: DMARC rests on DKIM.
    assert planned["notes"][1:] == [
        "channel orders: mail from alpha.test (account shop) has its Return-Path in beta.test, not aligned with "
        "alpha.test, so it passes DMARC on DKIM alone (signed for alpha.test); set "
        f"outbound.channels.orders.bounce_domain to alpha.test for SPF to align too ({ALIGNED})"]


ALIGNMENT = [
    pytest.param({"signing_domain": "beta.test", "bounce_domain": "beta.test"},
                 "channel orders: mail from alpha.test (account shop) is signed for beta.test (DKIM) and has its "
                 "Return-Path in beta.test (SPF), neither aligned with alpha.test, so it fails DMARC; set "
                 "outbound.channels.orders.signing_domain to alpha.test, or send it through a channel that signs for "
                 f"it ({ALIGNED})", id="neither"),
    pytest.param({"signing_domain": "beta.test", "bounce_domain": "alpha.test", "dkim_selector": "orders"},
                 "channel orders: mail from alpha.test (account shop) is signed for beta.test, not aligned with "
                 "alpha.test, so it passes DMARC on SPF alone (Return-Path in alpha.test), which forwarding breaks; "
                 f"set outbound.channels.orders.signing_domain to alpha.test ({ALIGNED})", id="spf-only"),
]


@pytest.mark.parametrize(("channel", "note"), ALIGNMENT)
def test_channel_mail_that_does_not_align_is_noted(root: Path, channel: dict, note: str) -> None:
    data = site()
    data["outbound"]["channels"]["orders"].update(channel)
    data["outbound"]["carriers"]["isp2"]["spf"] = []
    dnsfixtures.write_site(root, data)
    assert plan_json(root)["notes"] == [note]


def test_a_subdomain_aligns_with_its_parent(root: Path) -> None:
    data = site()
    data["domains"].append({"name": "news.alpha.test"})
    data["outbound"]["channels"]["bulk"].update(signing_domain="alpha.test", bounce_domain="news.alpha.test")
    data["outbound"]["accounts"]["newsletter"]["senders"] = ["@news.alpha.test", "info@alpha.test"]
    data["outbound"]["carriers"]["isp2"]["spf"] = []
    dnsfixtures.write_site(root, data)
    assert plan_json(root)["notes"] == []


# -- dns check against Knot -----------------------------------------------------------------------------------

knot_needed = pytest.mark.skipif(not Path(dnsfixtures.KNOTD).exists() and os.environ.get("CI") != "true",
                                 reason="knotd missing; scripts/install-host-deps installs knot")


def zones(planned: list[dict]) -> dict[str, str]:
    relay = {"name": RELAY_SPF[0], "ttl": 300, "type": "TXT", "rdata": f'"{RELAY_SPF[1]}"'}
    return dnsfixtures.zone_files([*planned, relay], (*dnsfixtures.ZONES, RELAY_ZONE))


def check(root: Path, knot: dnsfixtures.KnotServer) -> tuple[int, list[dict]]:
    result = run_cli("--inventory-root", str(root), "dns", "check", "dnstest", "--nameserver", knot.address,
                     "--format", "json")
    return result.exit_code, json.loads(result.stdout)["results"]


def not_passing(results: list[dict]) -> set[tuple[str, str, str]]:
    """(control, record name, status) of every result that did not pass, DNSSEC left out (the zones are unsigned)."""
    return {(r["id"], r["name"], r["status"]) for r in results if r["status"] != "pass" and r["id"] != "DNS-DNSSEC"}


def published_site(root: Path) -> list[dict]:
    dnsfixtures.write_site(root, site())
    dnsfixtures.write_published(root)
    write_channel_keys(root)
    return plan_json(root)["records"]


@knot_needed
def test_zone_from_the_plan_passes_with_channel_keys_and_carriers(root: Path, knot: dnsfixtures.KnotServer) -> None:
    knot.start(zones(published_site(root)))
    exit_code, results = check(root, knot)
    assert not_passing(results) == set()
    assert exit_code == 0
    checked = {(r["id"], r["name"]) for r in results}
    assert {("DNS-DKIM-RECORD", "orders._domainkey.alpha.test."), ("DNS-DKIM-MATCH", "bulk._domainkey.beta.test."),
            ("DNS-DKIM-BITS", "orders._domainkey.alpha.test.")} <= checked
    authorizes = {r["name"]: r["detail"] for r in results if r["id"] == "DNS-SPF-AUTHORIZES"}
    assert authorizes["alpha.test."] == (f"authorizes {dnsfixtures.IPV4}, {dnsfixtures.IPV6}, carrier isp1, "
                                         "carrier direct")


@knot_needed
def test_a_missing_channel_dkim_record_fails(root: Path, knot: dnsfixtures.KnotServer) -> None:
    planned = [r for r in published_site(root) if r["name"] != "orders._domainkey.alpha.test."]
    knot.start(zones(planned))
    exit_code, results = check(root, knot)
    name = "orders._domainkey.alpha.test."
    assert not_passing(results) == {("DNS-DKIM-RECORD", name, "fail"), ("DNS-DKIM-BITS", name, "not-applicable"),
                                    ("DNS-DKIM-MATCH", name, "not-applicable")}
    assert exit_code == exit_codes.EXIT_CODE_DNS_CHECK_FAILED


@knot_needed
def test_a_channel_dkim_record_with_another_key_fails(root: Path, knot: dnsfixtures.KnotServer) -> None:
    planned = copy.deepcopy(published_site(root))
    for record in planned:
        if record["name"] == "bulk._domainkey.beta.test.":
            record["rdata"] = f'"{dnsfixtures.dkim_record()}"'
    knot.start(zones(planned))
    _, results = check(root, knot)
    assert not_passing(results) == {("DNS-DKIM-MATCH", "bulk._domainkey.beta.test.", "fail")}


@knot_needed
def test_a_channel_dkim_record_before_deploy_warns(root: Path, knot: dnsfixtures.KnotServer) -> None:
    planned = published_site(root)
    dkim_key_file(dnsfixtures.published_dir(root), "alpha.test", "orders").unlink()
    knot.start(zones(planned))
    exit_code, results = check(root, knot)
    assert not_passing(results) == {("DNS-DKIM-MATCH", "orders._domainkey.alpha.test.", "warn")}
    assert exit_code == 0


@knot_needed
def test_spf_without_the_carriers_fails_its_control(root: Path, knot: dnsfixtures.KnotServer) -> None:
    planned = copy.deepcopy(published_site(root))
    for record in planned:
        if record["purpose"] == "spf" and record["name"] == "alpha.test.":
            record["rdata"] = f'"v=spf1 {APPLIANCE} ip4:198.51.100.0/25 -all"'
    knot.start(zones(planned))
    exit_code, results = check(root, knot)
    assert not_passing(results) == {("DNS-SPF-AUTHORIZES", "alpha.test.", "fail")}
    detail = next(r["detail"] for r in results if r["id"] == "DNS-SPF-AUTHORIZES" and r["name"] == "alpha.test.")
    # Half of isp1's network is not the network.
    assert detail == ("does not authorize carrier isp1's include:_spf.relay.test, ip4:198.51.100.0/24; carrier "
                      "direct's ip4:192.0.2.26: their mail fails SPF")
    assert exit_code == exit_codes.EXIT_CODE_DNS_CHECK_FAILED


@knot_needed
def test_spf_authorizing_the_carriers_in_other_words_passes(root: Path, knot: dnsfixtures.KnotServer) -> None:
    """A record that names the same hosts differently (a wider network, the include nested in another) passes."""
    planned = copy.deepcopy(published_site(root))
    for record in planned:
        if record["purpose"] == "spf" and record["name"] == "alpha.test.":
            record["rdata"] = f'"v=spf1 {APPLIANCE} ip4:192.0.2.0/24 ip4:198.51.100.0/23 include:_all.relay.test -all"'
    nested = {"name": "_all.relay.test.", "ttl": 300, "type": "TXT",
              "rdata": '"v=spf1 include:_spf.relay.test -all"'}
    knot.start(zones([*planned, nested]))
    _, results = check(root, knot)
    assert not_passing(results) == set()
