"""What a single value of a site file may be: the patterns and length bounds of names, addresses, sizes and
URLs, and how a value is quoted in messages."""

from __future__ import annotations

import ipaddress
import json
import math
import re
import unicodedata
from typing import Any

from mailappliance.errors import escape_unsafe

# Every pattern is matched against a whole value (fullmatch; \A and \Z also guard any plain match), so a
# trailing line break can never slip through the way it does past "$".
SITE_NAME_RE = re.compile(r"\A[a-z][a-z0-9-]{0,62}\Z")
LABEL_RE = re.compile(r"\A[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
# Labels of names that are not host names, as SPF include targets often are (_spf.example.com): underscores too.
_RECORD_LABEL_RE = re.compile(r"\A[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\Z")
# Names of carriers, channels and accounts: they become Postfix transport and instance names (postfix-<channel>,
# a queue folder) and an account's SMTP login, so one short lowercase label; without "@" no account name can
# be taken for a mailbox login.
OUTBOUND_NAME_RE = re.compile(r"\A[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?\Z")
# A SASL login at a relay, as Postfix's sasl_passwd table holds it before the ":" that starts the password.
RELAY_USERNAME_RE = re.compile(r"\A[A-Za-z0-9._%+=@-]{1,128}\Z")
# Local parts of addresses hosted here become Maildir paths and passwd-file keys, so they are held to a
# conservative set; addresses elsewhere (alias targets, the admin contact) may use any dot-atom.
_LOCAL_PART_HOSTED_RE = re.compile(r"\A[a-z0-9_](?:[a-z0-9_-]|\.(?=[a-z0-9_-]))*\Z")
_LOCAL_PART_ANY_RE = re.compile(r"\A[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
SIZE_RE = re.compile(r"\A([1-9][0-9]{0,15})([KMGT])\Z")
_SIZE_FACTORS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_CONTAINER_RE = re.compile(r"\A[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")
# What freshclam's PrivateMirror line can hold without quoting: http(s), a host name or IP address, an
# optional port and a path of unreserved characters and percent escapes; no query, fragment, user info,
# quotes, spaces, "#" or ";".
_MIRROR_URL_RE = re.compile(
    r"\A(?P<scheme>https?)://(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>(?:/(?:[A-Za-z0-9._~+=,:@-]|%[0-9A-Fa-f]{2})*)*)\Z"
)

# Length bounds, from what the files the values land in can hold.
MAX_DOMAIN_LENGTH = 253  # RFC 1035: a DNS name of at most 255 octets on the wire
MAX_LOCAL_PART_LENGTH = 64  # RFC 5321 section 4.5.3.1.1
MAX_ADDRESS_LENGTH = 254  # RFC 5321 section 4.5.3.1.3: a path of 256 octets, angle brackets included
MAX_DISPLAY_NAME_LENGTH = 128
MAX_PATH_LENGTH = 4096  # PATH_MAX on Linux
MAX_URL_LENGTH = 2048
MAX_CONTAINER_NAME_LENGTH = 253
# Enumerations, sizes and IP addresses: anything longer is not one of the allowed values anyway.
MAX_SHORT_TEXT_LENGTH = 64
# How much of a bad value a message quotes: short values whole, long ones cut with their length given.
SHOWN_CHARACTERS = 60
SHOWN_WHOLE = 80


def is_site_name(value: str) -> bool:
    return bool(SITE_NAME_RE.fullmatch(value))


def is_domain_name(value: str) -> bool:
    """A fully qualified DNS name: two or more LDH labels, the last one not all digits."""
    labels = value.split(".")
    return (
        len(value) <= MAX_DOMAIN_LENGTH
        and len(labels) >= 2
        and all(LABEL_RE.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def is_record_name(value: str) -> bool:
    """A fully qualified DNS name whose labels below the top-level one may hold underscores (_spf.example.com)."""
    labels = value.split(".")
    return (
        len(value) <= MAX_DOMAIN_LENGTH
        and len(labels) >= 2
        and all(_RECORD_LABEL_RE.fullmatch(label) for label in labels[:-1])
        and bool(LABEL_RE.fullmatch(labels[-1]))
        and not labels[-1].isdigit()
    )


def is_domain_wildcard(value: str) -> bool:
    """"*." and a DNS suffix (a TLD is enough: *.de): every name below that suffix, however deep."""
    labels = value.removeprefix("*.").split(".")
    return (
        value.startswith("*.")
        and len(value) <= MAX_DOMAIN_LENGTH
        and all(LABEL_RE.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def is_container_name(value: str) -> bool:
    return len(value) <= MAX_CONTAINER_NAME_LENGTH and bool(_CONTAINER_RE.fullmatch(value))


def is_email_address(value: str, hosted: bool = False) -> bool:
    local, sep, domain = value.rpartition("@")
    pattern = _LOCAL_PART_HOSTED_RE if hosted else _LOCAL_PART_ANY_RE
    return (
        bool(sep)
        and len(value) <= MAX_ADDRESS_LENGTH
        and len(local) <= MAX_LOCAL_PART_LENGTH
        and bool(pattern.fullmatch(local))
        and is_domain_name(domain)
    )


def is_host_address(value: str) -> bool:
    """A DNS name (one label is enough) or an IP address without a zone index (%eth0)."""
    if "%" not in value:
        try:
            ipaddress.ip_address(value)
            return True
        except ValueError:
            pass
    labels = value.lower().split(".")
    return len(value) <= MAX_DOMAIN_LENGTH and all(LABEL_RE.fullmatch(label) for label in labels)


def is_mirror_url(value: str) -> bool:
    """An http(s) URL freshclam can take as it is: see _MIRROR_URL_RE."""
    match = _MIRROR_URL_RE.fullmatch(value) if len(value) <= MAX_URL_LENGTH else None
    if match is None:
        return False
    host = match.group("host")
    if host.startswith("["):
        try:
            return ipaddress.ip_address(host[1:-1]).version == 6
        except ValueError:
            return False
    port = match.group("port")
    return is_host_address(host) and (port is None or 1 <= int(port) <= 65535)


def size_to_bytes(value: str) -> int:
    """Convert a validated size such as "25M" to bytes (binary multiples, as Postfix and Dovecot count)."""
    match = SIZE_RE.fullmatch(value)
    if not match:
        raise ValueError(f"not a size: {value!r}")
    return int(match.group(1)) * _SIZE_FACTORS[match.group(2)]


def show_value(value: Any) -> str:
    """Quote a value the way it would be written in YAML, for messages: one line, at most about 80 characters."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and abs(value) >= 10**20:
        # str() of a number of thousands of digits is slow, then refused by Python.
        return "a number of more than 20 digits"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    text = value if isinstance(value, str) else str(value)
    cut = text if len(text) <= SHOWN_WHOLE else text[:SHOWN_CHARACTERS] + "…"
    shown = escape_unsafe(json.dumps(cut, ensure_ascii=False) if isinstance(value, str) else cut)
    return shown if cut is text else f"{shown} ({len(text)} characters)"


def describe_char(char: str) -> str:
    """Name a character that is_unsafe_char refuses, for messages."""
    names = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab", "\x00": "a NUL character",
             "\u2028": "a line separator", "\u2029": "a paragraph separator", "\x85": "a next-line character"}
    kinds = {"Cf": "an invisible formatting character", "Cs": "a lone surrogate (not a character)"}
    name = names.get(char) or kinds.get(unicodedata.category(char), "a control character")
    return f"{name} (U+{ord(char):04X})"
