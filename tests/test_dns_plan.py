"""`mailappliance dns plan`: every record from the site and the published key and certificate, as a zone snippet
that parses back to the JSON, with pending records until the first deploy."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import certificates
import dnsfixtures
from clirunner import assert_clean_failure, run_cli
from mailappliance import exit_codes


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILAPPLIANCE_INVENTORY_ROOT", raising=False)
    return tmp_path / "inventories"


def plan(root: Path, *args: str) -> str:
    result = run_cli("--inventory-root", str(root), "dns", "plan", "dnstest", *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def plan_json(root: Path) -> dict:
    return json.loads(plan(root, "--format", "json"))


def records_of(data: dict, purpose: str) -> list[dict]:
    return [r for r in data["records"] if r["purpose"] == purpose]


def test_before_the_first_deploy_dkim_and_tlsa_are_pending(root: Path) -> None:
    dnsfixtures.write_site(root)
    zone = plan(root)
    published = root / "dnstest/published/mail.alpha.test"
    pending = [line for line in zone.splitlines() if line.startswith("; PENDING")]
    assert pending == [
        f"; PENDING mail._domainkey.alpha.test. TXT: no DKIM key at {published}/dkim/alpha.test.mail.pub yet; "
        "deploy first, which fetches it",
        f"; PENDING s2025._domainkey.beta.test. TXT: no DKIM key at {published}/dkim/beta.test.s2025.pub yet; "
        "deploy first, which fetches it",
        f"; PENDING _25._tcp.mail.alpha.test. TLSA: no certificate at {published}/tls/cert.pem yet; "
        "deploy first, which fetches it",
    ]
    assert "alpha.test.                          300 IN MX    10 mail.alpha.test." in zone.splitlines()
    assert "{{" not in zone and "{%" not in zone


def test_zone_snippet_holds_exactly_the_json_records(root: Path) -> None:
    dnsfixtures.write_site(root)
    dnsfixtures.write_published(root)
    zone = plan(root)
    data = plan_json(root)
    parsed = dns.zone.from_text(zone, origin=dns.name.root, relativize=False, check_origin=False)
    from_zone = {(name.to_text(), dns.rdatatype.to_text(rdataset.rdtype), rdataset.ttl, rdata)
                 for name, rdataset in parsed.iterate_rdatasets() for rdata in rdataset}
    from_json = {(r["name"], r["type"], r["ttl"],
                  dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(r["type"]), r["rdata"]))
                 for r in data["records"]}
    assert from_zone == from_json
    assert data["schema_version"] == 1
    assert all(r["pending"] is None for r in data["records"])
    assert {r["purpose"] for r in data["records"]} == {
        "mx", "spf", "dkim", "dmarc", "dmarc-report-auth", "mta-sts", "mta-sts-host", "tlsrpt", "autoconfig",
        "srv", "address", "helo-spf", "tlsa", "ptr"}


def test_every_kind_of_record_for_a_domain(root: Path) -> None:
    dnsfixtures.write_site(root)
    data = plan_json(root)
    beta = {(r["name"], r["type"]): r["value"] for r in data["records"] if r["group"] == "beta.test"}
    policy_id = data["mta_sts"]["id"]
    assert beta == {
        ("beta.test.", "MX"): "10 mail.alpha.test.",
        ("beta.test.", "TXT"): "v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all",
        ("s2025._domainkey.beta.test.", "TXT"): None,
        ("_dmarc.beta.test.", "TXT"): "v=DMARC1; p=reject; rua=mailto:admin@alpha.test",
        ("_mta-sts.beta.test.", "TXT"): f"v=STSv1; id={policy_id}",
        ("mta-sts.beta.test.", "CNAME"): "mail.alpha.test.",
        ("_smtp._tls.beta.test.", "TXT"): "v=TLSRPTv1; rua=mailto:admin@alpha.test",
        ("autoconfig.beta.test.", "CNAME"): "mail.alpha.test.",
        ("autodiscover.beta.test.", "CNAME"): "mail.alpha.test.",
        ("_submissions._tcp.beta.test.", "SRV"): "0 1 465 mail.alpha.test.",
        ("_submission._tcp.beta.test.", "SRV"): "10 1 587 mail.alpha.test.",
        ("_imaps._tcp.beta.test.", "SRV"): "0 1 993 mail.alpha.test.",
        ("_imap._tcp.beta.test.", "SRV"): "10 1 143 mail.alpha.test.",
        ("_pop3s._tcp.beta.test.", "SRV"): "0 1 995 mail.alpha.test.",
        ("_autodiscover._tcp.beta.test.", "SRV"): "0 1 443 mail.alpha.test.",
    }
    # The report address is in alpha.test, which confirms it takes beta.test's reports (RFC 9989).
    assert [(r["name"], r["value"]) for r in records_of(data, "dmarc-report-auth")] == [
        ("beta.test._report._dmarc.alpha.test.", "v=DMARC1;")]
    assert [(r["name"], r["type"], r["value"]) for r in data["records"] if r["group"] == "reverse"] == [
        ("25.2.0.192.in-addr.arpa.", "PTR", "mail.alpha.test."),
        ("5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", "PTR", "mail.alpha.test."),
    ]
    assert [(r["name"], r["type"]) for r in data["records"] if r["group"] == "mail.alpha.test"] == [
        ("mail.alpha.test.", "A"), ("mail.alpha.test.", "AAAA"), ("mail.alpha.test.", "TXT"),
        ("_25._tcp.mail.alpha.test.", "TLSA")]


def test_dkim_and_tlsa_come_from_what_deploy_fetched(root: Path) -> None:
    dnsfixtures.write_site(root)
    dnsfixtures.write_published(root)
    published = dnsfixtures.published_dir(root)
    data = plan_json(root)
    dkim = records_of(data, "dkim")[0]
    key_file = (published / "dkim/alpha.test.mail.pub").read_text()
    p = "".join(part.strip().strip('"') for part in key_file.split("(")[1].split(")")[0].split("\n")[2:])
    assert dkim["value"] == f"v=DKIM1; k=rsa; p={p}"
    assert all(len(part) <= 257 for part in dkim["rdata"].split(" ") if part.startswith('"p='))
    leaf = x509.load_pem_x509_certificates((published / "tls/cert.pem").read_bytes())[0]
    spki = leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert [r["value"] for r in records_of(data, "tlsa")] == [f"3 1 1 {hashlib.sha256(spki).hexdigest()}"]


def test_a_provided_certificate_not_deployed_yet_adds_a_second_tlsa(root: Path) -> None:
    data = copy.deepcopy(dnsfixtures.SITE)
    data["tls"] = {"source": "provided", "cert": "next/cert.pem", "key": "next/key.pem"}
    site = dnsfixtures.write_site(root, data)
    # The site model checks a provided chain: it names mail.alpha.test and mta-sts.<domain>, and fits its key.
    (site.parent / "next").mkdir()
    (site.parent / "next/cert.pem").write_bytes(certificates.chain_pem())
    (site.parent / "next/key.pem").write_bytes(certificates.key_pem())
    assert len(records_of(plan_json(root), "tlsa")) == 1
    dnsfixtures.write_published(root)
    planned = plan_json(root)
    assert len(records_of(planned, "tlsa")) == 2
    assert planned["notes"][0].startswith("two certificates: the deployed one (")


def test_mta_sts_id_is_derived_from_the_policy_text(root: Path) -> None:
    dnsfixtures.write_site(root)
    first = plan_json(root)["mta_sts"]
    assert first["policy"] == "version: STSv1\nmode: enforce\nmx: mail.alpha.test\nmax_age: 604800\n"
    assert first["id"] == hashlib.sha256(first["policy"].encode()).hexdigest()[:20]
    assert plan_json(root)["mta_sts"] == first
    data = copy.deepcopy(dnsfixtures.SITE)
    data["dns"]["mta_sts_mode"] = "testing"
    dnsfixtures.write_site(root, data)
    changed = plan_json(root)["mta_sts"]
    assert changed["id"] != first["id"] and "mode: testing\n" in changed["policy"]
    zone = plan(root)
    assert f"; MTA-STS policy (id {changed['id']}), served by the appliance at" in zone
    assert ";   mode: testing" in zone.splitlines()


def test_without_a_known_address_spf_names_the_host(root: Path) -> None:
    data = copy.deepcopy(dnsfixtures.SITE)
    data["host"] = {"address": "mail.alpha.test"}
    del data["dns"]["ipv6"]
    dnsfixtures.write_site(root, data)
    planned = plan_json(root)
    assert {r["value"] for r in records_of(planned, "spf")} == {"v=spf1 a:mail.alpha.test -all"}
    assert [(r["type"], r["pending"]) for r in records_of(planned, "address")] == [
        ("A", "the appliance's public address is unknown; set dns.ipv4 (and dns.ipv6) in the site file")]
    assert records_of(planned, "ptr") == []


def test_reports_outside_the_site_need_the_other_domains_consent(root: Path) -> None:
    data = copy.deepcopy(dnsfixtures.SITE)
    data["dns"]["dmarc_rua"] = "dmarc@reports.example"
    dnsfixtures.write_site(root, data)
    zone = plan(root)
    assert records_of(plan_json(root), "dmarc-report-auth") == []
    assert ('; - DMARC reports go to dmarc@reports.example outside the site: its domain must publish '
            'alpha.test._report._dmarc.reports.example. TXT "v=DMARC1;" or receivers send alpha.test\'s reports '
            "nowhere") in zone.splitlines()


def test_weak_dkim_key_is_noted(root: Path) -> None:
    dnsfixtures.write_site(root)
    dnsfixtures.write_published(root, dkim_bits=1024)
    notes = plan_json(root)["notes"]
    assert notes[0].endswith("alpha.test.mail.pub: the DKIM key has 1024 bits; receivers treat RSA keys under "
                             "2048 bits as weak, generate a 2048-bit key")


def test_unreadable_published_files_are_one_line_errors(root: Path) -> None:
    dnsfixtures.write_site(root)
    dnsfixtures.write_published(root)
    key_file = dnsfixtures.published_dir(root) / "dkim/alpha.test.mail.pub"
    key_file.write_text('mail._domainkey IN TXT ( "v=DKIM1; k=rsa; " "p=not-base64!" ) ;\n')
    result = run_cli("--inventory-root", str(root), "dns", "plan", "dnstest")
    [error] = assert_clean_failure(result, exit_codes.EXIT_CODE_USER_ERROR)
    assert error.startswith(f"{key_file}: not a DKIM key record (")
    assert error.endswith("); delete it and deploy again to fetch it anew")
    dnsfixtures.write_published(root)
    cert = dnsfixtures.published_dir(root) / "tls/cert.pem"
    cert.write_text("not a certificate\n")
    result = run_cli("--inventory-root", str(root), "dns", "plan", "dnstest")
    [error] = assert_clean_failure(result, exit_codes.EXIT_CODE_USER_ERROR)
    assert error.startswith(f"{cert}: not a PEM certificate chain (")
