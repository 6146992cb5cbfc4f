"""Real certificates for the site model's TLS checks: a test CA and leaf certificates it signs, as PEM."""

from __future__ import annotations

import datetime
import functools
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# Every name a provided certificate of conftest's sites must carry: the hostname and mta-sts.<domain>.
SITE_NAMES = ("mail.alpha.test", "mta-sts.alpha.test", "mta-sts.beta.test")
NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@functools.cache
def _ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (x509.CertificateBuilder().subject_name(_name("Test CA")).issuer_name(_name("Test CA"))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(NOW - DAY).not_valid_after(NOW + 3650 * DAY)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    return certificate, key


@functools.cache
def _leaf_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def leaf(names: tuple[str, ...] = SITE_NAMES, not_before: datetime.datetime = NOW - DAY,
         not_after: datetime.datetime = NOW + 90 * DAY) -> x509.Certificate:
    """A server certificate for `names` (subjectAltName DNS names), issued by the test CA to key_pem()'s key."""
    ca, ca_key = _ca()
    builder = (x509.CertificateBuilder().subject_name(_name(names[0] if names else "nameless"))
               .issuer_name(ca.subject).public_key(_leaf_key().public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                                        critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def chain_pem(certificate: x509.Certificate | None = None) -> bytes:
    """A chain as a CA hands it out: the leaf, then the CA."""
    return pem(certificate or leaf(), _ca()[0])


def key_pem(passphrase: bytes | None = None) -> bytes:
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    return _leaf_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def other_key_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def write_tls(directory: Path, cert: bytes | None = None, key: bytes | None = None) -> None:
    """tls/cert.pem and tls/key.pem under `directory`: by default a valid chain for SITE_NAMES and its key."""
    (directory / "tls").mkdir(exist_ok=True)
    (directory / "tls" / "cert.pem").write_bytes(chain_pem() if cert is None else cert)
    (directory / "tls" / "key.pem").write_bytes(key_pem() if key is None else key)
