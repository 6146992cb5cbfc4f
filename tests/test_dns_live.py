"""`dns check` and `dns apply` against a real authoritative server: Knot DNS on loopback, started per test.

The good zone is made from `dns plan`; each broken variant changes one thing and must fail exactly its control.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

import dnsfixtures
from clirunner import assert_clean_failure, run_cli
from mailappliance import exit_codes
from mailappliance.controls import catalogue as cat
from mailappliance.controls.catalogue import DNS_SPECS
from mailappliance.controls.model import STATUSES
from mailappliance.dns import servers
from mailappliance.dns.plan import txt_rdata

# CI installs knot through scripts/install-host-deps, so there a missing knotd is a failure, not a skip.
pytestmark = pytest.mark.skipif(not Path(dnsfixtures.KNOTD).exists() and os.environ.get("CI") != "true",
                                reason="knotd missing; scripts/install-host-deps installs knot")

SPF = f"v=spf1 ip4:{dnsfixtures.IPV4} ip6:{dnsfixtures.IPV6}"


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
    """(control, status) of every result that did not pass; DNSSEC is left to its own tests (the test zones are
    unsigned, which it reports as a warning of severity info)."""
    return {(r["id"], r["status"]) for r in results if r["status"] != "pass" and r["id"] != "DNS-DNSSEC"}


def replace(records: list[dict], purpose: str, name: str, value: str) -> list[dict]:
    """The records with the one of that purpose and name given another TXT value."""
    changed = copy.deepcopy(records)
    for record in changed:
        if record["purpose"] == purpose and record["name"] == name:
            record["rdata"] = txt_rdata(value)
    return changed


def without(records: list[dict], purpose: str, name: str) -> list[dict]:
    """The records without the planned one(s) of that purpose at that name."""
    return [r for r in records if not (r.get("purpose") == purpose and r["name"] == name)]


def extra(records: list[dict], name: str, rtype: str, rdata: str) -> list[dict]:
    return [*records, {"name": name, "ttl": 300, "type": rtype, "rdata": rdata}]


def retargeted(records: list[dict], purpose: str, name: str, rdata: str, rtype: str | None = None) -> list[dict]:
    """The records with the one of that purpose and name (and type) given other record data."""
    changed = copy.deepcopy(records)
    for record in changed:
        if record["purpose"] == purpose and record["name"] == name and rtype in (None, record["type"]):
            record["rdata"] = rdata
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
NA = "not-applicable"
DMARC = "v=DMARC1; p=reject; rua=mailto:admin@alpha.test"

# Each variant breaks one thing of the planned zone; the set is every result that no longer passes.
BROKEN_ZONES: list = [
    pytest.param(lambda r: without(r, "mx", "alpha.test."), {("DNS-MX", "fail"), ("DNS-MTASTS-MX", NA)},
                 id="mx-missing"),
    pytest.param(lambda r: extra(r, "alpha.test.", "TXT", '"v=spf1 -all"'),
                 {("DNS-SPF-RECORD", "fail"), ("DNS-SPF-ALL", NA), ("DNS-SPF-LOOKUPS", NA),
                  ("DNS-SPF-AUTHORIZES", NA)}, id="spf-two-records"),
    pytest.param(lambda r: replace(r, "spf", "alpha.test.", f"{SPF} +all"), {("DNS-SPF-ALL", "fail")},
                 id="spf-plus-all"),
    pytest.param(eleven_lookups, {("DNS-SPF-LOOKUPS", "fail"), ("DNS-SPF-AUTHORIZES", NA)}, id="spf-11-lookups"),
    pytest.param(lambda r: replace(r, "spf", "beta.test.", f"v=spf1 ip4:192.0.2.99 ip6:{dnsfixtures.IPV6} -all"),
                 {("DNS-SPF-AUTHORIZES", "fail")}, id="spf-not-the-appliance"),
    pytest.param(lambda r: without(r, "dkim", "mail._domainkey.alpha.test."),
                 {("DNS-DKIM-RECORD", "fail"), ("DNS-DKIM-BITS", NA), ("DNS-DKIM-MATCH", NA)}, id="dkim-missing"),
    pytest.param(lambda r: replace(r, "dkim", "s2025._domainkey.beta.test.", dnsfixtures.dkim_record()),
                 {("DNS-DKIM-MATCH", "fail")}, id="dkim-another-key"),
    pytest.param(lambda r: without(r, "dmarc", "_dmarc.alpha.test."),
                 {("DNS-DMARC-RECORD", "fail"), ("DNS-DMARC-POLICY", NA), ("DNS-DMARC-SP", NA),
                  ("DNS-DMARC-RUA", NA), ("DNS-DMARC-OBSOLETE", NA)}, id="dmarc-missing"),
    pytest.param(lambda r: replace(r, "dmarc", "_dmarc.beta.test.", "v=DMARC1; p=none; rua=mailto:admin@alpha.test"),
                 {("DNS-DMARC-POLICY", "fail")}, id="dmarc-p-none"),
    pytest.param(lambda r: replace(r, "dmarc", "_dmarc.alpha.test.", DMARC.replace("reject;", "reject; sp=none;")),
                 {("DNS-DMARC-SP", "fail")}, id="dmarc-sp-none"),
    pytest.param(lambda r: replace(r, "dmarc", "_dmarc.alpha.test.", "v=DMARC1; p=reject"),
                 {("DNS-DMARC-RUA", "fail")}, id="dmarc-no-rua"),
    pytest.param(lambda r: without(r, "dmarc-report-auth", "beta.test._report._dmarc.alpha.test."),
                 {("DNS-DMARC-RUA-AUTH", "fail")}, id="dmarc-rua-not-authorized"),
    pytest.param(lambda r: replace(r, "dmarc", "_dmarc.alpha.test.", DMARC.replace("reject;", "reject; pct=50;")),
                 {("DNS-DMARC-OBSOLETE", "warn")}, id="dmarc-obsolete-pct"),
    pytest.param(lambda r: replace(r, "mta-sts", "_mta-sts.alpha.test.", "v=STSv1; id=20200101"),
                 {("DNS-MTASTS-RECORD", "fail")}, id="mta-sts-old-id"),
    pytest.param(lambda r: extra(r, "beta.test.", "MX", "20 backup-mx.example."), {("DNS-MTASTS-MX", "fail")},
                 id="mta-sts-mx-not-covered"),
    pytest.param(lambda r: retargeted(r, "mta-sts-host", "mta-sts.beta.test.", "www.example."),
                 {("DNS-MTASTS-HOST", "fail")}, id="mta-sts-host-elsewhere"),
    pytest.param(lambda r: without(r, "tlsrpt", "_smtp._tls.alpha.test."), {("DNS-TLSRPT", "fail")},
                 id="tlsrpt-missing"),
    pytest.param(tlsa_for_another_certificate, {("DNS-TLSA-MATCH", "fail")}, id="tlsa-not-matching"),
    pytest.param(lambda r: without(r, "srv", "_submissions._tcp.alpha.test."), {("DNS-SRV", "fail")},
                 id="srv-missing"),
    pytest.param(lambda r: retargeted(r, "autoconfig", "autoconfig.alpha.test.", "hoster.example."),
                 {("DNS-AUTOCONFIG", "fail")}, id="autoconfig-elsewhere"),
    pytest.param(lambda r: retargeted(r, "address", "mail.alpha.test.", "192.0.2.99", "A"), {("DNS-ADDRESS", "fail")},
                 id="address-wrong"),
    pytest.param(lambda r: retargeted(r, "ptr", "25.2.0.192.in-addr.arpa.", "host.provider.example."),
                 {("DNS-PTR", "fail")}, id="ptr-provider-name"),
]
# Controls broken by a changed site or key rather than a changed zone, in the tests below.
BROKEN_ELSEWHERE = {"DNS-DKIM-BITS", "DNS-MTASTS-MODE", "DNS-DNSSEC"}


def test_every_dns_control_has_a_broken_variant() -> None:
    broken = {cid for param in BROKEN_ZONES for cid, status in param.values[1] if status in ("fail", "warn")}
    assert broken | BROKEN_ELSEWHERE == {spec.id for spec in DNS_SPECS}


def test_zone_from_the_plan_passes_every_control(root: Path, knot: dnsfixtures.KnotServer) -> None:
    dnsfixtures.write_site(root)
    dnsfixtures.write_published(root)
    knot.start(dnsfixtures.zone_files(plan_records(root)))
    exit_code, results = check(root, knot)
    assert not_passing(results) == set()
    assert exit_code == 0
    assert {r["id"] for r in results} == {spec.id for spec in DNS_SPECS}
    dnssec = [r for r in results if r["id"] == "DNS-DNSSEC"]
    # Unsigned is reported, not required: a warning, which never fails the check.
    assert [(r["name"], r["status"], r["detail"]) for r in dnssec] == [
        (zone, "warn", "unsigned: no DNSKEY at the domain, so TLSA records cannot be trusted")
        for zone in ("alpha.test.", "beta.test.")]


def test_json_names_the_controls_of_the_audit_catalogue(root: Path, knot: dnsfixtures.KnotServer) -> None:
    dnsfixtures.write_site(root)
    dnsfixtures.write_published(root)
    knot.start(dnsfixtures.zone_files(plan_records(root)))
    result = cli(root, "dns", "check", "dnstest", "--nameserver", knot.address, "--format", "json")
    data = json.loads(result.stdout)
    assert data["schema_version"] == 2 and data["nameserver"] == knot.address and data["answered"] > 0
    assert data["controls"]["DNS-DNSSEC"]["severity"] == "info"
    assert data["controls"]["DNS-SPF-ALL"] == {
        "title": cat.DNS_SPF_ALL.title, "severity": "high", "remediation": cat.DNS_SPF_ALL.remediation,
        "references": list(cat.DNS_SPF_ALL.references)}
    assert {r["status"] for r in data["results"]} <= set(STATUSES)


def test_signed_zone_is_reported_as_signed(root: Path, knot: dnsfixtures.KnotServer) -> None:
    dnsfixtures.write_site(root)
    dnsfixtures.write_published(root)
    knot.start(dnsfixtures.zone_files(plan_records(root)), signed=True)
    exit_code, results = check(root, knot)
    assert exit_code == 0 and not_passing(results) == set()
    dnssec = [r for r in results if r["id"] == "DNS-DNSSEC"]
    # Knot signs but, being authoritative only, does not validate: no AD.
    assert [(r["name"], r["status"], r["detail"]) for r in dnssec] == [
        (f"{zone}", "pass", "signed; the resolver did not report it validated (no AD)")
        for zone in ("alpha.test.", "beta.test.")]


@pytest.mark.parametrize(("variant", "expected"), BROKEN_ZONES)
def test_each_broken_record_fails_its_control(root: Path, knot: dnsfixtures.KnotServer, variant: Variant,
                                              expected: set) -> None:
    dnsfixtures.write_site(root)
    dnsfixtures.write_published(root)
    knot.start(dnsfixtures.zone_files(variant(plan_records(root))))
    exit_code, results = check(root, knot)
    assert not_passing(results) == expected
    failing = any(status == "fail" for _, status in expected)
    assert exit_code == (exit_codes.EXIT_CODE_DNS_CHECK_FAILED if failing else 0)


def test_pending_records_found_in_dns_are_warnings(root: Path, knot: dnsfixtures.KnotServer) -> None:
    """Before the first deploy the DKIM key and certificate are unknown: records already in DNS cannot be
    compared, which is worth a warning but not a failure."""
    dnsfixtures.write_site(root)
    zone = plan_records(root)
    zone = replace(zone, "dkim", "mail._domainkey.alpha.test.", dnsfixtures.dkim_record())
    zone = replace(zone, "dkim", "s2025._domainkey.beta.test.", dnsfixtures.dkim_record())
    zone = [dict(record, pending=None) for record in zone if record["rdata"]]
    zone = extra(zone, "_25._tcp.mail.alpha.test.", "TLSA", "3 1 1 " + "cd" * 32)
    knot.start(dnsfixtures.zone_files(zone))
    exit_code, results = check(root, knot)
    assert not_passing(results) == {("DNS-DKIM-MATCH", "warn"), ("DNS-TLSA-MATCH", "warn")}
    assert exit_code == 0
    tlsa = next(r for r in results if r["id"] == "DNS-TLSA-MATCH")
    assert tlsa["detail"].startswith("present, not compared: no certificate at ")


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
    # The audit's vocabulary and the catalogue's severity, column by column.
    assert lines[failed].split()[:3] == ["fail", "high", "DNS-SPF-ALL"]
    dnssec = next(line for line in lines if "DNS-DNSSEC" in line)
    assert dnssec.split()[:3] == ["warn", "info", "DNS-DNSSEC"]
    assert lines[0] == f"dns check of dnstest ({dnsfixtures.HOSTNAME}) against {knot.address}"
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
    result = cli(root, "dns", "check", "dnstest", "--nameserver", knot.address, "--format", "json")
    exit_code, data = result.exit_code, json.loads(result.stdout)
    results = data["results"]
    assert exit_code == exit_codes.EXIT_CODE_DNS_CHECK_FAILED
    assert data["answered"] == 0
    assert {r["status"] for r in results if r["id"] == "DNS-MX"} == {"error"}
    # DNSSEC alone stays a warning: not determined is not a failure of its own.
    assert {r["status"] for r in results if r["id"] == "DNS-DNSSEC"} == {"warn"}
    # Two timeouts are waited for, then the server counts as down instead of costing a timeout per record.
    assert [r["detail"] for r in results if r["status"] == "error"][:3] == [
        "lookup failed: no answer within 0.3 s", "lookup failed: no answer within 0.3 s",
        "lookup failed: not asked: 2 lookups in a row got no answer, the server looks down"]
    text = cli(root, "dns", "check", "dnstest", "--nameserver", knot.address)
    assert f"no lookup got an answer from {knot.address}: is it the right server, and does it serve the " \
           "site's zones?" in text.stdout.splitlines()


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
