"""Ed25519 keys for checkpoints: the site keeps the private key in its vault; the host gets it in a 0600 file.

Only what Debian 12's python3-cryptography (38.x) has: no public_bytes_raw() and friends, which came in 40.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import ArchiveError


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ArchiveError(f"{what} {path}: cannot be read ({error.strerror}); check the path and its "
                           "permissions") from None


def _base64_32(text: bytes) -> bytes | None:
    """32 bytes written as base64 (44 characters), the form the site's vault keeps keys in; None otherwise."""
    if len(text) != 44:
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return None
    return raw if len(raw) == 32 else None


def _raw_32(data: bytes) -> bytes | None:
    """The 32 key bytes of a file holding them raw, as 64 hex digits or in base64; None for anything else (PEM)."""
    if len(data) == 32:
        return data
    text = data.strip()
    if (raw := _base64_32(text)) is not None:
        return raw
    if len(text) == 64:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            pass
    return None


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """A private key file: PEM (PKCS#8, unencrypted), the raw 32 bytes, or those as 64 hex digits or in base64
    (the site's vault keeps it so). Refused when group or others may read it."""
    data = _read(path, "signing key")
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ArchiveError(f"signing key {path}: group or others may read it (mode {stat.S_IMODE(mode):04o}); "
                           f"run chmod 600 {path}")
    if (raw := _raw_32(data)) is not None:
        return Ed25519PrivateKey.from_private_bytes(raw)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ArchiveError(f"signing key {path}: not an Ed25519 private key (unencrypted PEM, raw 32 bytes, 64 "
                           "hex digits or base64 expected)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ArchiveError(f"signing key {path}: a {type(key).__name__}, not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key file: PEM (SubjectPublicKeyInfo), the raw 32 bytes, or those 32 bytes as 64 hex digits or in
    base64 (as the site's inventory writes it)."""
    data = _read(path, "public key")
    if (raw := _raw_32(data)) is not None:
        return Ed25519PublicKey.from_public_bytes(raw)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ArchiveError(f"public key {path}: not an Ed25519 public key (PEM, raw 32 bytes or 64 hex digits "
                           "expected)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ArchiveError(f"public key {path}: a {type(key).__name__}, not an Ed25519 key")
    return key


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: Ed25519PublicKey) -> str:
    """A short name for a public key: the first 16 hex digits of the SHA-256 of its raw bytes."""
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def signature_valid(key: Ed25519PublicKey, signature: bytes, payload: bytes) -> bool:
    try:
        key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True
