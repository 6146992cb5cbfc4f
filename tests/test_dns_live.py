"""`dns check` and `dns apply` against a real authoritative server: Knot DNS on loopback, started per test.

The good zone is made from `dns plan`; each broken variant changes one thing and must fail exactly its control.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

import dnsfixtures
from clirunner import assert_clean_failure, run_cli
from mailappliance import exit_codes
from mailappliance.dns import servers

# CI installs knot through scripts/install-host-deps, so there a missing knotd is a failure, not a skip.
pytestmark = pytest.mark.skipif(not Path(dnsfixtures.KNOTD).exists() and os.environ.get("CI") != "true",
                                reason="knotd missing; scripts/install-host-deps installs knot")

SPF = f"v=spf1 ip4:{dnsfixtures.IPV4} ip6:{dnsfixtures.IPV6}"


@pytest.fixture
def knot(tmp_path: Path) -> Iterator[dnsfixtures.KnotServer]:
    server = dnsfixtures.KnotServer(tmp_path / "knot")
    yield server
    server.stop()


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILAPPLIANCE_INVENTORY_ROOT", raising=False)
    return tmp_path / "inventories"


def cli(root: Path, *args: str):
    return run_cli("--inventory-root", str(root), *args)


def plan_records(root: Path) -> list[dict]:
    result = cli(root, "dns", "plan", "dnstest", "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["records"]


def check(root: Path, knot: dnsfixtures.KnotServer) -> tuple[int, list[dict]]:
    result = cli(root, "dns", "check", "dnstest", "--nameserver", knot.address, "--format", "json")
    return result.exit_code, json.loads(result.stdout)["results"]


def not_passing(results: list[dict]) -> set[tuple[str, str]]:
    return {(r["id"], r["status"]) for r in results if r["status"] not in ("pass", "info")}


def replace(records: list[dict], purpose: str, name: str, value: str) -> list[dict]:
    """The records with the one of that purpose and name given another TXT value."""
    changed = copy.deepcopy(records)
    for record in changed:
        if record["purpose"] == purpose and record["name"] == name:
            record["rdata"] = f'"{value}"'
    return changed


def tlsa_for_another_certificate(records: list[dict]) -> list[dict]:
    changed = copy.deepcopy(records)
    for record in changed:
        if record["type"] == "TLSA":
            record["rdata"] = "3 1 1 " + "ab" * 32
    return changed


def eleven_lookups(records: list[dict]) -> list[dict]:
    """An SPF that still authorizes the appliance and ends in -all, but whose nested includes need 11 lookups."""
    a = "a:mail.alpha.test"
    chain = [
        ("_spf1.alpha.test.", f"v=spf1 include:_spf2.alpha.test {a} {a} {a} -all"),   # 1 + 3
        ("_spf2.alpha.test.", f"v=spf1 {' '.join([a] * 6)} -all"),                     # 1 + 6
    ]
    changed = replace(records, "spf", "alpha.test.", f"{SPF} include:_spf1.alpha.test -all")
    return changed + [{"name": name, "ttl": 300, "type": "TXT", "rdata": f'"{text}"'} for name, text in chain]


Variant = Callable[[list[dict]], list[dict]]

BROKEN_ZONES: list = [
    pytest.param(lambda r: replace(r, "spf", "alpha.test.", f"{SPF} +all"), {("DNS-SPF-ALL", "fail")},
                 id="spf-plus-all"),
    pytest.param(eleven_lookups, {("DNS-SPF-LOOKUPS", "fail"), ("DNS-SPF-AUTHORIZES", "n/a")}, id="spf-11-lookups"),
    pytest.param(lambda r: replace(r, "dmarc", "_dmarc.beta.test.", "v=DMARC1; p=none; rua=mailto:admin@alpha.test"),
                 {("DNS-DMARC-POLICY", "fail")}, id="dmarc-p-none"),
    pytest.param(tlsa_for_another_certificate, {("DNS-TLSA-MATCH", "fail")}, id="tlsa-not-matching"),
]


def test_zone_from_the_plan_passes_every_control(root: Path, knot: dnsfixtures.KnotServer) -> None:
    dnsfixtures.write_site(root)
    dnsfixtures.write_published(root)
    knot.start(dnsfixtures.zone_files(plan_records(root)))
    exit_code, results = check(root, knot)
    assert not_passing(results) == set()
    assert exit_code == 0
    controls = {r["id"] for r in results}
    assert controls >= {"DNS-MX", "DNS-SPF-ALL", "DNS-SPF-LOOKUPS", "DNS-DKIM-BITS", "DNS-DKIM-MATCH",
                        "DNS-DMARC-POLICY", "DNS-DMARC-RUA-AUTH", "DNS-MTASTS-MODE", "DNS-MTASTS-MX",
                        "DNS-TLSRPT", "DNS-TLSA-MATCH", "DNS-SRV", "DNS-AUTOCONFIG", "DNS-ADDRESS", "DNS-PTR"}
    dnssec = [r for r in results if r["id"] == "DNS-DNSSEC"]
    assert {r["status"] for r in dnssec} == {"info"} and "unsigned" in dnssec[0]["detail"]


def test_signed_zone_is_reported_as_signed(root: Path, knot: dnsfixtures.KnotServer) -> None:
    dnsfixtures.write_site(root)
    dnsfixtures.write_published(root)
    knot.start(dnsfixtures.zone_files(plan_records(root)), signed=True)
    exit_code, results = check(root, knot)
    assert exit_code == 0 and not_passing(results) == set()
    dnssec = [r for r in results if r["id"] == "DNS-DNSSEC"]
    # Knot signs but, being authoritative only, does not validate: no AD bit.
    assert [(r["name"], r["status"], r["detail"]) for r in dnssec] == [
        (f"{zone}", "info", "signed; the resolver did not report it validated (no AD)")
        for zone in ("alpha.test.", "beta.test.")]


@pytest.mark.parametrize(("variant", "expected"), BROKEN_ZONES)
def test_each_broken_record_fails_its_control(root: Path, knot: dnsfixtures.KnotServer, variant: Variant,
                                              expected: set) -> None:
    dnsfixtures.write_site(root)
    dnsfixtures.write_published(root)
    knot.start(dnsfixtures.zone_files(variant(plan_records(root))))
    exit_code, results = check(root, knot)
    assert not_passing(results) == expected
    assert exit_code == exit_codes.EXIT_CODE_DNS_CHECK_FAILED


def test_dkim_key_of_1024_bits_fails_its_control(root: Path, knot: dnsfixtures.KnotServer) -> None:
    dnsfixtures.write_site(root)
    dnsfixtures.write_published(root, dkim_bits=1024)
    knot.start(dnsfixtures.zone_files(plan_records(root)))
    _, results = check(root, knot)
    assert not_passing(results) == {("DNS-DKIM-BITS", "fail")}
    assert {r["name"] for r in results if r["status"] == "fail"} == {"mail._domainkey.alpha.test.",
                                                                     "s2025._domainkey.beta.test."}


def test_mta_sts_in_testing_mode_fails_its_control(root: Path, knot: dnsfixtures.KnotServer) -> None:
    data = copy.deepcopy(dnsfixtures.SITE)
    data["dns"]["mta_sts_mode"] = "testing"
    dnsfixtures.write_site(root, data)
    dnsfixtures.write_published(root)
    knot.start(dnsfixtures.zone_files(plan_records(root)))
    _, results = check(root, knot)
    assert not_passing(results) == {("DNS-MTASTS-MODE", "fail")}


def test_text_report_shows_what_was_observed(root: Path, knot: dnsfixtures.KnotServer) -> None:
    dnsfixtures.write_site(root)
    dnsfixtures.write_published(root)
    knot.start(dnsfixtures.zone_files(replace(plan_records(root), "spf", "alpha.test.", f"{SPF} ~all")))
    result = cli(root, "dns", "check", "dnstest", "--nameserver", knot.address)
    lines = result.stdout.splitlines()
    failed = next(i for i, line in enumerate(lines) if "DNS-SPF-ALL" in line and line.strip().startswith("fail"))
    assert lines[failed].split(":", 1)[1].strip() == (
        "weaker: ~all only marks mail from other hosts as suspicious (softfail); end the record with -all")
    assert lines[failed + 1].strip() == f"observed: {SPF} ~all"
    assert lines[failed + 2].strip() == f"expected: {SPF} -all"
    assert assert_clean_failure(result, exit_codes.EXIT_CODE_DNS_CHECK_FAILED) == [
        "dns check of dnstest: 1 failed: DNS-SPF-ALL (alpha.test.)"]


def test_missing_records_and_an_unanswering_server(root: Path, knot: dnsfixtures.KnotServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    dnsfixtures.write_site(root)
    knot.start(dnsfixtures.zone_files([]))
    _, results = check(root, knot)
    by_id = {(r["id"], r["name"]): r for r in results}
    assert by_id[("DNS-MX", "alpha.test.")]["state"] == "missing"
    assert by_id[("DNS-DKIM-RECORD", "mail._domainkey.alpha.test.")]["detail"].startswith(
        "no DKIM key record; no DKIM key at ")
    knot.stop()
    monkeypatch.setattr(servers, "LOOKUP_LIFETIME", 0.3)
    exit_code, results = check(root, knot)
    assert exit_code == exit_codes.EXIT_CODE_DNS_CHECK_FAILED
    assert {r["status"] for r in results if r["id"] == "DNS-MX"} == {"error"}
    # Two timeouts are waited for, then the server counts as down instead of costing a timeout per record.
    assert [r["detail"] for r in results if r["status"] == "error"][:3] == [
        "lookup failed: no answer within 0.3 s", "lookup failed: no answer within 0.3 s",
        "lookup failed: not asked: 2 lookups in a row got no answer, the server looks down"]


def soa_serial(knot: dnsfixtures.KnotServer, zone: str) -> int:
    response = dns.query.tcp(dns.message.make_query(zone, "SOA"), "127.0.0.1", port=knot.port, timeout=2)
    return response.answer[0][0].serial


def test_apply_sends_the_difference_and_dry_run_sends_nothing(root: Path, knot: dnsfixtures.KnotServer,
                                                              tmp_path: Path) -> None:
    dnsfixtures.write_site(root)
    dnsfixtures.write_published(root)
    zones = dnsfixtures.zone_files([
        {"name": "alpha.test.", "ttl": 300, "type": "TXT", "rdata": '"v=spf1 +all"'},
        {"name": "alpha.test.", "ttl": 300, "type": "TXT", "rdata": '"site-verification=4711"'},
        {"name": "alpha.test.", "ttl": 300, "type": "MX", "rdata": "10 old-mx.example."},
    ])
    knot.start(zones, updates=True)
    key = dnsfixtures.tsig_key_file(tmp_path / "update.key")

    dry = cli(root, "dns", "apply", "dnstest", "--server", knot.address, "--tsig-key", str(key), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "  - alpha.test. 300 IN TXT \"v=spf1 +all\"" in dry.stdout.splitlines()
    assert "  - alpha.test. 300 IN MX 10 old-mx.example." in dry.stdout.splitlines()
    assert f'  + alpha.test. 300 IN TXT "{SPF} -all"' in dry.stdout.splitlines()
    assert dry.stdout.splitlines()[-1] == f"dry run: nothing sent to {knot.address}"
    assert dnsfixtures.TSIG_SECRET not in dry.output
    assert soa_serial(knot, "alpha.test.") == 1
    assert check(root, knot)[0] == exit_codes.EXIT_CODE_DNS_CHECK_FAILED

    real = cli(root, "dns", "apply", "dnstest", "--server", knot.address, "--tsig-key", str(key))
    assert real.exit_code == 0, real.output + knot.log()
    updated = [line.split(":")[0] for line in real.stdout.splitlines() if line.startswith("updated ")]
    assert updated == [f"updated {zone}" for zone in dnsfixtures.ZONES]
    exit_code, results = check(root, knot)
    assert not_passing(results) == set()
    assert exit_code == 0
    kept = dns.query.tcp(dns.message.make_query("alpha.test.", "TXT"), "127.0.0.1", port=knot.port, timeout=2)
    assert '"site-verification=4711"' in kept.answer[0].to_text()

    again = cli(root, "dns", "apply", "dnstest", "--server", knot.address, "--tsig-key", str(key))
    assert again.stdout.splitlines()[-1] == f"nothing to change on {knot.address}"


def test_apply_with_a_wrong_key_is_one_clear_error(root: Path, knot: dnsfixtures.KnotServer, tmp_path: Path) -> None:
    dnsfixtures.write_site(root)
    knot.start(dnsfixtures.zone_files([]), updates=True)
    other = "c2VjcmV0LXRoYXQtdGhlLXNlcnZlci1kb2VzLW5vdC1rbm93"
    key = dnsfixtures.tsig_key_file(tmp_path / "wrong.key", secret=other)
    result = cli(root, "dns", "apply", "dnstest", "--server", knot.address, "--tsig-key", str(key))
    errors = assert_clean_failure(result, exit_codes.EXIT_CODE_USER_ERROR)
    assert len(errors) == 1 and errors[0].startswith(f"{knot.address} rejected the TSIG key 'mailappliance-test'")
    assert other not in result.output
    assert soa_serial(knot, "alpha.test.") == 1


def test_apply_to_one_zone_skips_the_others(root: Path, knot: dnsfixtures.KnotServer, tmp_path: Path) -> None:
    dnsfixtures.write_site(root)
    dnsfixtures.write_published(root)
    knot.start(dnsfixtures.zone_files([]), updates=True)
    key = dnsfixtures.tsig_key_file(tmp_path / "update.key")
    result = cli(root, "dns", "apply", "dnstest", "--server", knot.address, "--tsig-key", str(key),
                 "--zone", "beta.test")
    assert result.exit_code == 0, result.output
    assert [line for line in result.stdout.splitlines() if line.startswith("updated")] == [
        "updated beta.test.: 15 changes"]
    assert "skipped alpha.test. MX: outside zone beta.test." in result.stdout.splitlines()
    assert soa_serial(knot, "alpha.test.") == 1
    assert soa_serial(knot, "beta.test.") > 1
