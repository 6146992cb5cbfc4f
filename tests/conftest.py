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
