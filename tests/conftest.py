"""Shared fixtures: a site folder in tmp_path holding a complete site file and the files it refers to, and a
Knot DNS server for the DNS and audit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import certificates
import dnsfixtures

PROJECT_DIR = Path(__file__).resolve().parent.parent
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"

# PEM armour around garbage: no certificate can be read from it.
CERT_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
# ClamAV's test signature for the EICAR file, as a hash database line (md5:size:name).
EICAR_HDB = "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n"

# The contract's example site, every key used.
FULL_SITE = """\
site: molecule
hostname: mail.alpha.test
admin_contact: admin@alpha.test
host:
  address: 192.0.2.10
  user: root
  port: 22
domains:
  - name: alpha.test
    dkim_selector: mail
  - name: beta.test
mailboxes:
  - address: alice@alpha.test
    quota: 1G
    name: Alice Example
  - address: admin@alpha.test
    quota: 512M
aliases:
  - address: sales@alpha.test
    to: [alice@alpha.test, partner@outside.example]
  - address: "@beta.test"
    to: [alice@alpha.test]
message_size_limit: 25M
tls:
  source: provided
  cert: tls/cert.pem
  key: tls/key.pem
spam:
  add_header: 6
  reject: 15
antivirus:
  mirror_url: http://clamav-mirror.internal/
  local_databases: [eicar.hdb]
login_protection:
  max_failures: 8
  ban_time: 900
  allow: [192.0.2.50, 2001:db8:50::/48]
trusted_relays: [198.51.100.25]
"""

# The smallest valid site: everything optional left out (a signature source is always needed).
MINIMAL_SITE: dict = {
    "site": "molecule",
    "hostname": "mail.alpha.test",
    "admin_contact": "admin@outside.example",
    "domains": [{"name": "alpha.test"}, {"name": "beta.test"}],
    "mailboxes": [{"address": "alice@alpha.test"}],
    "antivirus": {"local_databases": ["eicar.hdb"]},
}


# A site with every part of the outbound: section: two relays and the direct carrier, an overseas route from a list
# file, the channels orders and bulk and an account on each. README.md shows this outbound: section.
OUTBOUND_SITE = """\
site: acme
hostname: mail.acme.example
admin_contact: admin@acme.example
host:
  address: 192.0.2.10
domains:
  - name: acme.example
  - name: news.acme.example
mailboxes:
  - address: admin@acme.example
antivirus:
  local_databases: [eicar.hdb]
outbound:
  carriers:
    isp1:
      type: relay
      host: smtp.isp1.example
      username: acme-relay
      spf: [include:_spf.isp1.example]
      limits:
        concurrency_per_destination: 10
        messages_per_minute: 30
    isp2:
      type: relay
      host: relay.isp2.example
      port: 2525
    direct:
      source_address: 192.0.2.11
      helo_name: out.acme.example
      mta_sts: true
  routes:
    - domains: ["file:overseas.txt"]
      carriers: [isp2, isp1]
    - domains: ["*"]
      channels: [orders, bulk]
      carriers: [isp1, isp2]
  channels:
    orders:
      signing_domain: acme.example
      submission_port: 2587
    bulk:
      dkim_selector: bulk2026
      signing_domain: news.acme.example
      submission_port: 2588
      process_limit: 200
  accounts:
    shop:
      channel: orders
      senders: [orders@acme.example, invoices@acme.example]
      daily_quota: 50000
      rate_per_minute: 600
    newsletter:
      channel: bulk
      senders: ["@news.acme.example"]
      daily_quota: 2000000
      rate_per_minute: 6000
"""
# A site with every key of the archive: section; README.md shows this archive: section.
ARCHIVE_SITE = """\
site: acme
hostname: mail.acme.example
admin_contact: admin@acme.example
host:
  address: 192.0.2.10
domains:
  - name: acme.example
mailboxes:
  - address: admin@acme.example
antivirus:
  local_databases: [eicar.hdb]
archive:
  store: /srv/mail-archive
  cold_store: /srv/mail-archive-cold
  cold_after_days: 90
  on_failure: defer
  retention:
    - domains: [broker.example, "*.broker.example"]
      direction: outbound
      days: 3650
    - direction: local
      days: 365
    - days: 2557
  checkpoint_minutes: 60
"""
OVERSEAS_LIST = """\
# Recipients abroad leave through isp2, whose relay sits overseas.
*.de
*.fr
*.co.uk
partner.example.net
"""


@pytest.fixture
def site_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the working directory, with the TLS and ClamAV files FULL_SITE names (a certificate chain
    for mail.alpha.test and mta-sts.<domain> with its key, as the site model checks them)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILAPPLIANCE_INVENTORY_ROOT", raising=False)
    monkeypatch.delenv("MAILAPPLIANCE_BUILD_ROOT", raising=False)
    certificates.write_tls(tmp_path)
    (tmp_path / "eicar.hdb").write_text(EICAR_HDB)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "eicar.hdb").write_text(EICAR_HDB)
    return tmp_path


@pytest.fixture
def full_site(site_dir: Path) -> Path:
    path = site_dir / "site.yml"
    path.write_text(FULL_SITE)
    return Path("site.yml")


@pytest.fixture
def outbound_site(site_dir: Path) -> Path:
    (site_dir / "overseas.txt").write_text(OVERSEAS_LIST)
    (site_dir / "site.yml").write_text(OUTBOUND_SITE)
    return Path("site.yml")


@pytest.fixture
def archive_site(site_dir: Path) -> Path:
    (site_dir / "site.yml").write_text(ARCHIVE_SITE)
    return Path("site.yml")


def write_site(directory: Path, data: dict | str, name: str = "site.yml") -> Path:
    """Write a site file (a mapping is dumped as YAML) and return its path relative to `directory`."""
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    (directory / name).write_text(text)
    return Path(name)


@pytest.fixture
def knot(tmp_path: Path) -> Iterator[dnsfixtures.KnotServer]:
    """A knotd of the test's own, stopped afterwards; the test starts it with the zones it needs."""
    server = dnsfixtures.KnotServer(tmp_path / "knot")
    yield server
    server.stop()
