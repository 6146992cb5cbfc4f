"""Checks of the TLS section: a provided certificate chain and key are read, matched and checked for the
names and dates the appliance needs."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from mailappliance.site.checks.base import Checker, join
from mailappliance.site.model import TLS_SOURCES, Tls
from mailappliance.site.values import SHOWN_WHOLE, show_value

_PEM_BLOCK_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_PEM_BEGIN = b"-----BEGIN "

# A PEM chain or key is a few KiB; a bigger file is a mistake (a whole CA bundle, a log) and slow to parse.
MAX_PEM_FILE_BYTES = 1024**2


def check_tls(checker: Checker, top: dict[str, Any], hostname: str | None, domains: list[str]) -> Tls | None:
    raw = top.get("tls")
    if raw is None:
        return Tls()
    data = checker.mapping(raw, "tls", ("source", "cert", "key"), "tls: {source: self-signed}")
    if data is None:
        return None
    source = data.get("source", "self-signed")
    if source not in TLS_SOURCES:
        checker.error("tls.source", f"{show_value(source)} is not a TLS source", "use self-signed or provided")
        return None
    if source == "self-signed":
        extra = [key for key in ("cert", "key") if key in data]
        for key in extra:
            checker.error(join("tls", key), "is only used when source is provided",
                          "remove it or set source: provided")
        return None if extra else Tls()
    cert = _pem_file(checker, data, "cert", "CERTIFICATE", "the certificate chain (leaf first)")
    key = _pem_file(checker, data, "key", "PRIVATE KEY", "the private key")
    if cert is None or key is None:
        return None
    chain = _certificate_chain(checker, cert[0], data["cert"])
    private_key = _private_key(checker, key[0], data["key"])
    if chain is None or private_key is None:
        return None
    ok = _key_matches(checker, chain[0], private_key, data["key"])
    # MTA-STS senders fetch each domain's policy from mta-sts.<domain> over HTTPS with this certificate.
    names = ([hostname] if hostname else []) + [f"mta-sts.{domain}" for domain in domains]
    ok = _certificate_names(checker, chain[0], names) and ok
    ok = _certificate_dates(checker, chain[0]) and ok
    return Tls(source="provided", cert=cert[1], key=key[1]) if ok else None


def _pem_file(checker: Checker, data: dict[str, Any], key: str, label: str, what: str) -> tuple[bytes, Path] | None:
    """The content and path of a PEM file holding at least one `label` block."""
    where = join("tls", key)
    fix = f"give the path of {what} in PEM format, relative to the site file's folder"
    if data.get(key) is None:
        checker.error(where, "is required when source is provided", fix)
        return None
    file = checker.local_file(data[key], where, fix)
    if file is None:
        return None
    try:
        with file.open("rb") as stream:
            content = stream.read(MAX_PEM_FILE_BYTES + 1)
    except OSError as exc:
        checker.error(where, f"{show_value(data[key])} is not readable ({exc.strerror})",
                      "make it readable by the user running mailappliance")
        return None
    if len(content) > MAX_PEM_FILE_BYTES:
        checker.error(where, f"{show_value(data[key])} is larger than {MAX_PEM_FILE_BYTES // 1024**2} MiB",
                      f"give {what} alone, in PEM format")
        return None
    labels = [match.group(1).decode() for match in _PEM_BLOCK_RE.finditer(content)]
    if label not in labels and not (label == "PRIVATE KEY" and any(n.endswith("PRIVATE KEY") for n in labels)):
        checker.error(where, f"{show_value(data[key])} is not a PEM {label.lower()}",
                      f"give {what} in PEM format (-----BEGIN {label}-----)")
        return None
    if content.count(_PEM_BEGIN) != len(labels):
        checker.error(where, f"{show_value(data[key])} has a -----BEGIN line without its -----END line",
                      f"give {what} in PEM format, each block complete")
        return None
    return content, file


def _certificate_chain(checker: Checker, content: bytes, written: str) -> list[x509.Certificate] | None:
    """Every block of tls.cert as a certificate, each followed by its issuer; None after an error."""
    where = "tls.cert"
    fix = "give only CERTIFICATE blocks, the server's certificate first, then each one's issuer"
    chain: list[x509.Certificate] = []
    for number, match in enumerate(_PEM_BLOCK_RE.finditer(content), start=1):
        label = match.group(1).decode()
        if label != "CERTIFICATE":
            checker.error(where, f"block {number} of {show_value(written)} is a {label}, not a certificate",
                          f"{fix} (the key belongs in tls.key)")
            return None
        try:
            certificate = x509.load_pem_x509_certificate(match.group(0))
            # Parsed on first use; malformed ones raise here rather than in the checks below.
            _ = (certificate.subject, certificate.issuer, certificate.extensions)
        except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
            checker.error(where, f"certificate {number} of {show_value(written)} cannot be parsed",
                          "give the chain your certificate authority issued, in PEM format")
            return None
        chain.append(certificate)
    for number, (certificate, issuer) in enumerate(zip(chain, chain[1:]), start=1):
        if certificate.issuer != issuer.subject:
            checker.error(where, f"certificate {number + 1} ({_subject(issuer)}) did not issue certificate "
                          f"{number} ({_subject(certificate)})", fix)
            return None
    return chain


def _private_key(checker: Checker, content: bytes, written: str) -> Any:
    """The private key of tls.key, which must be the only one there and have no passphrase."""
    where = "tls.key"
    blocks = [m.group(0) for m in _PEM_BLOCK_RE.finditer(content) if m.group(1).endswith(b"PRIVATE KEY")]
    if len(blocks) > 1:
        checker.error(where, f"{show_value(written)} holds {len(blocks)} private keys",
                      "keep only the key of the certificate in tls.cert")
        return None
    try:
        return serialization.load_pem_private_key(blocks[0], password=None)
    except TypeError:
        checker.error(where, f"{show_value(written)} is protected by a passphrase",
                      "give the key without one (Postfix, Dovecot and nginx read it unattended at start), e.g. "
                      "openssl pkey -in key.pem -out plain.pem")
    except (ValueError, UnsupportedAlgorithm):
        checker.error(where, f"{show_value(written)} cannot be read as a private key",
                      "give the private key in PEM format (-----BEGIN PRIVATE KEY-----)")
    return None


def _key_matches(checker: Checker, leaf: x509.Certificate, private_key: Any, written: Any) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        certified = leaf.public_key().public_bytes(serialization.Encoding.DER, spki)
    except (ValueError, UnsupportedAlgorithm):
        certified = b""
    if private_key.public_key().public_bytes(serialization.Encoding.DER, spki) != certified:
        checker.error("tls.key", f"{show_value(written)} is not the key of the certificate in tls.cert",
                      "give the private key the first certificate of tls.cert was issued for")
        return False
    return True


def _certificate_names(checker: Checker, leaf: x509.Certificate, names: list[str]) -> bool:
    try:
        extension = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        listed = [name.lower() for name in extension.value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        listed = []
    shown = ", ".join(n[:SHOWN_WHOLE] for n in listed[:5]) + (", …" if len(listed) > 5 else "") if listed \
        else "no DNS names"
    missing = [name for name in names if not any(_name_covers(pattern, name) for pattern in listed)]
    for name in missing:
        checker.error("tls.cert", f"the certificate does not name {name} (its subjectAltName lists {shown})",
                      "get a certificate for the hostname and mta-sts.<domain> of every domain")
    return not missing


def _certificate_dates(checker: Checker, leaf: x509.Certificate) -> bool:
    now = datetime.datetime.now(datetime.UTC)
    fix = "renew it, or give a certificate that is valid now"
    if leaf.not_valid_after_utc < now:
        checker.error("tls.cert", f"the certificate expired on {_when(leaf.not_valid_after_utc)}", fix)
        return False
    if leaf.not_valid_before_utc > now:
        checker.error("tls.cert", f"the certificate is not valid before {_when(leaf.not_valid_before_utc)}",
                      fix + " (check this computer's clock)")
        return False
    return True


def _name_covers(pattern: str, name: str) -> bool:
    """Whether a certificate's DNS name matches `name`; a wildcard stands for exactly one whole label."""
    if pattern.startswith("*."):
        first, _, rest = name.partition(".")
        return bool(first) and rest == pattern[2:]
    return pattern == name


def _subject(certificate: x509.Certificate) -> str:
    return show_value(certificate.subject.rfc4514_string()).strip('"')


def _when(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
