"""Real parts for the DNS tests: a Knot DNS server on loopback, and the DKIM key and certificate a deploy
would have fetched from the appliance."""

from __future__ import annotations

import base64
import datetime
import shutil
import socket
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
TSIG_NAME = "mailappliance-test"
TSIG_SECRET = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
START_TIMEOUT = 10.0

# One test site: two domains, the appliance in the first, both address families (each with a reverse zone).
HOSTNAME = "mail.alpha.test"
IPV4 = "192.0.2.25"
IPV6 = "2001:db8::25"
ZONES = ("alpha.test.", "beta.test.", "2.0.192.in-addr.arpa.", "8.b.d.0.1.0.0.2.ip6.arpa.")
SITE: dict = {
    "site": "dnstest",
    "hostname": HOSTNAME,
    "admin_contact": "admin@alpha.test",
    "host": {"address": IPV4},
    "domains": [{"name": "alpha.test"}, {"name": "beta.test", "dkim_selector": "s2025"}],
    "mailboxes": [{"address": "admin@alpha.test"}],
    "antivirus": {"mirror_url": "http://clamav-mirror.internal/"},
    "dns": {"ipv6": IPV6, "dmarc_policy": "reject", "ttl": 300},
}


def write_site(inventory_root: Path, data: dict | None = None) -> Path:
    path = inventory_root / "dnstest" / "site.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data or SITE, sort_keys=False))
    return path


def published_dir(inventory_root: Path) -> Path:
    return inventory_root / "dnstest" / "published" / HOSTNAME


def _dkim_public_key(bits: int) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def dkim_record(bits: int = 2048) -> str:
    """The TXT text of a DKIM key record for a fresh key (one the appliance does not sign with)."""
    return f"v=DKIM1; k=rsa; p={_dkim_public_key(bits)}"


def write_dkim_key(inventory_root: Path, domain: str, selector: str, bits: int = 2048) -> Path:
    """A key record the way `rspamadm dkim_keygen` writes it: BIND style, the key split over strings."""
    p = _dkim_public_key(bits)
    chunks = "\n\t".join(f'"{p[i:i + 200]}"' for i in range(0, len(p), 200))
    path = published_dir(inventory_root) / "dkim" / f"{domain}.{selector}.pub"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{selector}._domainkey IN TXT ( "v=DKIM1; k=rsa; "\n\t"p="\n\t{chunks} ) ;\n')
    return path


def write_certificate(path: Path, name: str = HOSTNAME) -> Path:
    """A self-signed certificate and an intermediate-looking second one after it (the chain is leaf first)."""
    pem = b""
    for common_name in (name, "Test CA"):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                       .public_key(key.public_key()).serial_number(x509.random_serial_number())
                       .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
                       .sign(key, hashes.SHA256()))
        pem += certificate.public_bytes(serialization.Encoding.PEM)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pem)
    return path


def write_published(inventory_root: Path, dkim_bits: int = 2048) -> None:
    write_dkim_key(inventory_root, "alpha.test", "mail", dkim_bits)
    write_dkim_key(inventory_root, "beta.test", "s2025", dkim_bits)
    write_certificate(published_dir(inventory_root) / "tls" / "cert.pem")


def zone_files(records: list[dict], zones: tuple[str, ...] = ZONES) -> dict[str, str]:
    """Zone file texts holding the given plan records (JSON form), each in the longest matching zone of `zones`."""
    texts = {zone: f"$TTL 300\n{zone} SOA ns.alpha.test. hostmaster.alpha.test. 1 3600 600 86400 300\n"
                   f"{zone} NS ns.alpha.test.\n" for zone in zones}
    if "alpha.test." in texts:
        texts["alpha.test."] += "ns.alpha.test. A 127.0.0.1\n"
    for record in records:
        if record.get("pending"):
            continue
        matching = [z for z in zones if record["name"] == z or record["name"].endswith("." + z)]
        if not matching:
            raise ValueError(f"{record['name']} {record['type']} is in none of the zones {', '.join(zones)}")
        texts[max(matching, key=len)] += f"{record['name']} {record['ttl']} IN {record['type']} {record['rdata']}\n"
    return texts


def free_port() -> int:
    """A port free for both UDP and TCP on loopback."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


class KnotServer:
    """knotd in the foreground on 127.0.0.1:<port>, serving zone files from its own folder."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, zones: dict[str, str], updates: bool = False, signed: bool = False) -> None:
        """Serve `zones` (name: zone file text); `updates` lets the test key update them, `signed` has Knot
        sign them with DNSSEC (keys made at start)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "db").mkdir(exist_ok=True)
        for zone, text in zones.items():
            (self.directory / f"{zone}zone").write_text(text)
        self.port = free_port()
        acl = ""
        if updates:
            acl = (f"key:\n  - id: {TSIG_NAME}\n    algorithm: hmac-sha256\n    secret: {TSIG_SECRET}\n"
                   f"acl:\n  - id: update\n    key: {TSIG_NAME}\n    action: update\n")
        zone_lines = "".join(f"  - domain: {zone}\n" + ("    acl: update\n" if updates else "")
                             + ("    dnssec-signing: on\n" if signed else "") for zone in zones)
        config = self.directory / "knot.conf"
        config.write_text(
            f"server:\n  listen: 127.0.0.1@{self.port}\n  rundir: {self.directory}\n"
            f"log:\n  - target: stderr\n    any: info\n"
            f"database:\n  storage: {self.directory / 'db'}\n"
            f"{acl}"
            f"template:\n  - id: default\n    storage: {self.directory}\n    file: \"%s.zone\"\n"
            "    zonefile-sync: -1\n    zonefile-load: whole\n"
            f"zone:\n{zone_lines}"
        )
        log = (self.directory / "knotd.log").open("wb")
        self.process = subprocess.Popen([KNOTD, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.wait_until_serving(next(iter(zones)))

    def wait_until_serving(self, zone: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"knotd exited with {self.process.returncode}:\n{self.log()}")
            try:
                response = dns.query.tcp(dns.message.make_query(zone, "SOA"), "127.0.0.1", port=self.port,
                                         timeout=0.5)
                if response.answer:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"knotd did not serve {zone} within {START_TIMEOUT} s:\n{self.log()}")

    def log(self) -> str:
        path = self.directory / "knotd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def tsig_key_file(path: Path, secret: str = TSIG_SECRET) -> Path:
    """The key as `tsig-keygen` writes it."""
    path.write_text(f'key "{TSIG_NAME}" {{\n\talgorithm hmac-sha256;\n\tsecret "{secret}";\n}};\n')
    return path
