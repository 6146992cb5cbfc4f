"""What the appliance generated and DNS has to publish, as deploy copies it back to the controller.

`<inventory-root>/<site>/published/<host>/dkim/<domain>.<selector>.pub` is Rspamd's `rspamadm dkim_keygen`
output (a BIND-style TXT record with split strings) and `.../tls/cert.pem` the certificate chain the mail
services present, leaf first.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import dkim
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mailappliance.errors import UserError

_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')
_TAG_RE = re.compile(r"(?:^|;)\s*p\s*=\s*([A-Za-z0-9+/=\s]*)")


@dataclass(frozen=True)
class DkimKey:
    """A DKIM key record: its TXT text, key type and size, and the public key it carries (DER)."""

    record: str
    key_type: str
    bits: int
    public_key: bytes


@dataclass(frozen=True)
class CertificateKey:
    """The leaf certificate's SubjectPublicKeyInfo digest, as a TLSA 3 1 1 record carries it."""

    spki_sha256: str
    subject: str
    source: Path


def dkim_key_file(published_host_dir: Path, domain: str, selector: str) -> Path:
    return published_host_dir / "dkim" / f"{domain}.{selector}.pub"


def certificate_file(published_host_dir: Path) -> Path:
    return published_host_dir / "tls" / "cert.pem"


def parse_dkim_record(text: str) -> DkimKey:
    """Judge a DKIM key record's text with dkimpy; ValueError says what is wrong with it."""
    try:
        _, bits, key_type, _ = dkim.evaluate_pk("record", text.encode("ascii"))
    # binascii.Error (a ValueError) escapes dkimpy for a p= that is not base64.
    except (dkim.DKIMException, ValueError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None
    match = _TAG_RE.search(text)
    public_key = base64.b64decode("".join(match.group(1).split())) if match else b""
    return DkimKey(record=text, key_type=key_type.decode(), bits=int(bits), public_key=public_key)


def read_dkim_key(path: Path) -> DkimKey | None:
    """The key record in a `rspamadm dkim_keygen` output file; None when the file does not exist yet."""
    try:
        content = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read ({exc}); delete it and deploy again to fetch it anew") from None
    strings = _QUOTED_RE.findall(content)
    text = "".join(strings) if strings else content.strip()
    text = " ".join(text.split())
    try:
        return parse_dkim_record(text)
    except ValueError as exc:
        raise UserError(f"{path}: not a DKIM key record ({exc}); delete it and deploy again to fetch it "
                        "anew") from None


def read_certificate_key(path: Path) -> CertificateKey | None:
    """The leaf (first) certificate of a PEM chain; None when the file does not exist."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
    try:
        leaf = x509.load_pem_x509_certificates(content)[0]
    except ValueError as exc:
        raise UserError(f"{path}: not a PEM certificate chain ({exc}); give the chain in PEM format, "
                        "leaf first") from None
    spki = leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return CertificateKey(spki_sha256=hashlib.sha256(spki).hexdigest(), subject=leaf.subject.rfc4514_string(),
                          source=path)
