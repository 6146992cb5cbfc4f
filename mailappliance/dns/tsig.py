"""TSIG key files as `tsig-keygen` (BIND) and `keymgr -t` (Knot) write them. The secret is never printed."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

import dns.name
import dns.tsig
import yaml

from mailappliance.errors import UserError

_BIND_RE = re.compile(
    r'key\s+"?(?P<name>[A-Za-z0-9._-]+)"?\s*\{(?P<body>[^}]*)\}\s*;', re.DOTALL)
_BIND_FIELD_RE = re.compile(r'(?P<key>algorithm|secret)\s+"?(?P<value>[A-Za-z0-9+/=._-]+)"?\s*;')
ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5")


def read_tsig_key(path: Path) -> dns.tsig.Key:
    """The first key in the file; UserError naming the file (never its content) when there is none."""
    fix = ('write it as `tsig-keygen NAME > FILE` does: key "NAME" { algorithm hmac-sha256; secret "BASE64"; };')
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such TSIG key file; {fix}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise UserError(f"{path}: cannot read the TSIG key file ({reason}); check its permissions") from None
    fields = _bind_key(text) or _knot_key(text)
    if fields is None:
        raise UserError(f"{path}: no TSIG key found; {fix}")
    name, algorithm, secret = fields
    algorithm = algorithm.lower()
    if algorithm not in ALGORITHMS:
        raise UserError(f"{path}: key {name!r} uses the unknown algorithm {algorithm!r}; use one of "
                        f"{', '.join(ALGORITHMS)}")
    try:
        base64.b64decode(secret, validate=True)
        key_name = dns.name.from_text(name)
    except (binascii.Error, ValueError, dns.name.NameTooLong, dns.name.EmptyLabel):
        raise UserError(f"{path}: key {name!r} has a secret that is not base64 or a name that is not a DNS "
                        "name; generate the key again") from None
    return dns.tsig.Key(key_name, secret, dns.name.from_text(algorithm))


def _bind_key(text: str) -> tuple[str, str, str] | None:
    match = _BIND_RE.search(text)
    if not match:
        return None
    fields = {m.group("key"): m.group("value") for m in _BIND_FIELD_RE.finditer(match.group("body"))}
    if "algorithm" not in fields or "secret" not in fields:
        return None
    return match.group("name"), fields["algorithm"], fields["secret"]


def _knot_key(text: str) -> tuple[str, str, str] | None:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    keys = data.get("key") if isinstance(data, dict) else None
    if not isinstance(keys, list) or not keys or not isinstance(keys[0], dict):
        return None
    key = keys[0]
    if not all(isinstance(key.get(field), str) for field in ("id", "algorithm", "secret")):
        return None
    return key["id"], key["algorithm"], key["secret"]
