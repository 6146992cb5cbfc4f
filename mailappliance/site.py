"""The site model: load a site file (site.yml), check every rule of the schema and return typed data.

All problems in a file are collected and reported together, one line each, in the form
`<file>: <field path>: <what is wrong>; <what is allowed or how to fix it>`.
"""

from __future__ import annotations

import datetime
import difflib
import ipaddress
import json
import math
import os
import re
import unicodedata
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from mailappliance.errors import UserError, escape_unsafe, is_unsafe_char

# Every pattern is matched against a whole value (fullmatch; \A and \Z also guard any plain match), so a
# trailing line break can never slip through the way it does past "$".
SITE_NAME_RE = re.compile(r"\A[a-z][a-z0-9-]{0,62}\Z")
_LABEL_RE = re.compile(r"\A[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
# Local parts of addresses hosted here become Maildir paths and passwd-file keys, so they are held to a
# conservative set; addresses elsewhere (alias targets, the admin contact) may use any dot-atom.
_LOCAL_PART_HOSTED_RE = re.compile(r"\A[a-z0-9_](?:[a-z0-9_-]|\.(?=[a-z0-9_-]))*\Z")
_LOCAL_PART_ANY_RE = re.compile(r"\A[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_SIZE_RE = re.compile(r"\A([1-9][0-9]{0,15})([KMGT])\Z")
_SIZE_FACTORS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_USER_RE = re.compile(r"\A[a-z_][a-z0-9_-]{0,31}\Z")
_CONTAINER_RE = re.compile(r"\A[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")
# What freshclam's PrivateMirror line can hold without quoting: http(s), a host name or IP address, an
# optional port and a path of unreserved characters and percent escapes; no query, fragment, user info,
# quotes, spaces, "#" or ";".
_MIRROR_URL_RE = re.compile(
    r"\A(?P<scheme>https?)://(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>(?:/(?:[A-Za-z0-9._~+=,:@-]|%[0-9A-Fa-f]{2})*)*)\Z"
)
_PEM_BLOCK_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_PEM_BEGIN = b"-----BEGIN "

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
# A PEM chain or key is a few KiB; a bigger file is a mistake (a whole CA bundle, a log) and slow to parse.
MAX_PEM_FILE_BYTES = 1024**2
# A site with thousands of mailboxes is well under a MiB.
MAX_SITE_FILE_BYTES = 16 * 1024**2
# The schema nests four levels (aliases[0].to[0]); anchors save typing but must not multiply the data.
MAX_YAML_DEPTH = 32
MAX_YAML_ALIASES = 100
# No tag, the non-specific "!", or !!str to keep text that looks like a number as text.
_ALLOWED_TAGS = (None, "!", "tag:yaml.org,2002:str")
# Loops are reported one line each, up to this many; the rest show after those are fixed.
MAX_LOOPS_REPORTED = 20

# Signature and whitelist formats clamd loads from its database folder (see sigtool(1) and the ClamAV
# signature writing guide); anything else copied there is ignored by clamd or breaks its reload.
CLAMAV_DATABASE_EXTENSIONS = (
    ".cat", ".cdb", ".cld", ".crb", ".cud", ".cvd", ".fp", ".ftm", ".gdb", ".hdb", ".hdu", ".hsb",
    ".hsu", ".idb", ".ign", ".ign2", ".imp", ".ldb", ".ldu", ".mdb", ".mdu", ".msb", ".msu", ".ndb",
    ".ndu", ".pdb", ".pwdb", ".sfp", ".wdb", ".yar", ".yara",
)

# postmaster@ and abuse@ of every domain go to admin_contact unless the site defines them.
IMPLICIT_LOCAL_PARTS = ("postmaster", "abuse")

DEFAULT_DKIM_SELECTOR = "mail"
DEFAULT_QUOTA = "1G"
DEFAULT_MESSAGE_SIZE_LIMIT = "25M"
DEFAULT_SPAM_ADD_HEADER = 6.0
DEFAULT_SPAM_REJECT = 15.0
# Postfix takes any long as message_size_limit, but the clamav role lets clamd scan up to eight times the
# limit (a message with its unpacked archives, roles/clamav/defaults/main.yml) and clamd refuses limits of
# 4 GiB and more, so 511M is the largest limit every service honours; below 1M mail with a single photo
# bounces.
MESSAGE_SIZE_LIMIT_RANGE = ("1M", "511M")
# Dovecot keeps quotas as signed 64-bit byte counts (8 EiB); 1024T is far inside that and beyond any disk,
# so anything larger is a typo. Below 1M a mailbox cannot take one ordinary message.
QUOTA_RANGE = ("1M", "1024T")
# Rspamd's rules add up to a few dozen points; a threshold above 1000 is a typo, and .nan or .inf would
# never (or always) match.
SPAM_SCORE_MAX = 1000.0
CONNECTIONS = ("ssh", "podman")
TLS_SOURCES = ("self-signed", "provided")
DEFAULT_DNS_TTL = 3600
DNS_TTL_RANGE = (60, 604800)
DMARC_POLICIES = ("quarantine", "reject")
DEFAULT_DMARC_POLICY = "quarantine"
MTA_STS_MODES = ("enforce", "testing")
DEFAULT_MTA_STS_MODE = "enforce"
DEFAULT_MTA_STS_MAX_AGE = 604800
# RFC 8461 section 3.2 caps max_age at 31557600 s (about a year); under a day senders refetch the
# policy so often that it protects little between fetches.
MTA_STS_MAX_AGE_RANGE = (86400, 31557600)

# Password guessing (fail2ban): failures per source address within find_time get it blocked for ban_time.
DEFAULT_MAX_FAILURES = 5
MAX_FAILURES_RANGE = (1, 100)
DEFAULT_FIND_TIME = 600
FIND_TIME_RANGE = (60, 86400)
DEFAULT_BAN_TIME = 3600
# At least a few seconds, so a ban is ever seen; at most a year.
BAN_TIME_RANGE = (10, 31536000)
# Networks listed in allow lists and trusted relays: enough for a site's real neighbours, small enough to read.
MAX_NETWORKS = 64

_TOP_KEYS = ("site", "hostname", "admin_contact", "host", "domains", "mailboxes", "aliases",
             "message_size_limit", "tls", "spam", "antivirus", "dns", "login_protection", "trusted_relays")
_LOGIN_PROTECTION_KEYS = ("max_failures", "find_time", "ban_time", "allow")
_DNS_KEYS = ("ttl", "dmarc_policy", "dmarc_rua", "tlsrpt_rua", "mta_sts_mode", "mta_sts_max_age", "ipv4", "ipv6")
# How much of a bad value a message quotes: short values whole, long ones cut with their length given.
_SHOWN_CHARACTERS = 60
_SHOWN_WHOLE = 80


@dataclass(frozen=True)
class Host:
    """How Ansible reaches the appliance: over SSH, or into a local Podman container by name."""

    address: str
    user: str = "root"
    port: int = 22
    connection: str = "ssh"


@dataclass(frozen=True)
class Domain:
    name: str
    dkim_selector: str = DEFAULT_DKIM_SELECTOR


@dataclass(frozen=True)
class Mailbox:
    address: str
    quota: str
    quota_bytes: int
    name: str = ""


@dataclass(frozen=True)
class Alias:
    address: str
    to: tuple[str, ...]

    @property
    def is_catch_all(self) -> bool:
        return self.address.startswith("@")


@dataclass(frozen=True)
class Tls:
    source: str = "self-signed"
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True)
class Spam:
    add_header: float = DEFAULT_SPAM_ADD_HEADER
    reject: float = DEFAULT_SPAM_REJECT
    # Checks that ask services on the internet (DNS blocklists, Rspamd's fuzzy storage and map server);
    # air-gapped sites turn them off.
    network_checks: bool = True


@dataclass(frozen=True)
class Antivirus:
    mirror_url: str = ""
    local_databases: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Dns:
    """What `mailappliance dns` publishes; defaults are filled in from the rest of the site when loaded."""

    ttl: int = DEFAULT_DNS_TTL
    dmarc_policy: str = DEFAULT_DMARC_POLICY
    # Receive DMARC aggregate and TLS-RPT reports; both default to admin_contact.
    dmarc_rua: str = ""
    tlsrpt_rua: str = ""
    mta_sts_mode: str = DEFAULT_MTA_STS_MODE
    mta_sts_max_age: int = DEFAULT_MTA_STS_MAX_AGE
    # The appliance's public addresses; "" when unknown. ipv4/ipv6 default to host.address when it is an IP.
    ipv4: str = ""
    ipv6: str = ""


@dataclass(frozen=True)
class LoginProtection:
    """Blocking of password guessers per source address, on every port that takes a password."""

    max_failures: int = DEFAULT_MAX_FAILURES
    find_time: int = DEFAULT_FIND_TIME
    ban_time: int = DEFAULT_BAN_TIME
    # Networks never blocked: monitoring hosts, an office's NAT address.
    allow: tuple[str, ...] = ()


@dataclass(frozen=True)
class Site:
    """A validated site; paths are absolute, names and addresses lower case."""

    path: Path
    name: str
    hostname: str
    admin_contact: str
    host: Host
    domains: tuple[Domain, ...]
    mailboxes: tuple[Mailbox, ...]
    aliases: tuple[Alias, ...]
    message_size_limit: str
    message_size_limit_bytes: int
    tls: Tls
    spam: Spam
    antivirus: Antivirus
    dns: Dns = Dns()
    login_protection: LoginProtection = LoginProtection()
    # Networks that may hand in mail on port 25 with a hosted domain as envelope sender (gateways, scanners).
    trusted_relays: tuple[str, ...] = ()


def is_site_name(value: str) -> bool:
    return bool(SITE_NAME_RE.fullmatch(value))


def is_domain_name(value: str) -> bool:
    """A fully qualified DNS name: two or more LDH labels, the last one not all digits."""
    labels = value.split(".")
    return (
        len(value) <= MAX_DOMAIN_LENGTH
        and len(labels) >= 2
        and all(_LABEL_RE.fullmatch(label) for label in labels)
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
    return len(value) <= MAX_DOMAIN_LENGTH and all(_LABEL_RE.fullmatch(label) for label in labels)


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
    match = _SIZE_RE.fullmatch(value)
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
    cut = text if len(text) <= _SHOWN_WHOLE else text[:_SHOWN_CHARACTERS] + "…"
    shown = escape_unsafe(json.dumps(cut, ensure_ascii=False) if isinstance(value, str) else cut)
    return shown if cut is text else f"{shown} ({len(text)} characters)"


def _describe(char: str) -> str:
    """Name a character that is_unsafe_char refuses, for messages."""
    names = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab", "\x00": "a NUL character",
             "\u2028": "a line separator", "\u2029": "a paragraph separator", "\x85": "a next-line character"}
    kinds = {"Cf": "an invisible formatting character", "Cs": "a lone surrogate (not a character)"}
    name = names.get(char) or kinds.get(unicodedata.category(char), "a control character")
    return f"{name} (U+{ord(char):04X})"


def resolve_site_file(site: str, inventory_root: Path) -> Path:
    """Map the SITE argument of a command to a site file: a site name or a path to a site file."""
    looks_like_path = os.sep in site or site.endswith((".yml", ".yaml")) or _is_file(Path(site))
    if looks_like_path:
        path = Path(site)
        if _is_dir(path):
            raise UserError(f"{site}: is a folder, not a site file; give a site name or the path of a site.yml")
        if not _is_file(path):
            raise UserError(f"{site}: no such site file; give a site name or the path of an existing site.yml")
        return path
    if not is_site_name(site):
        raise UserError(
            f"{show_value(site)} is neither a site name nor a path to a site file; use a name made of lowercase "
            "letters, digits and hyphens, or a path ending in .yml"
        )
    path = inventory_root / site / "site.yml"
    if not _is_file(path):
        raise UserError(
            f"{path}: no such file, so there is no site named {show_value(site)}; create it with "
            f"`mailappliance site new {site} --domain DOMAIN --hostname FQDN` or pass the path of a site file"
        )
    return path


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def load_site(path: Path) -> Site:
    """Read and validate a site file; raise UserError with one line per problem found."""
    display = str(path)
    try:
        with path.open("rb") as stream:
            content = stream.read(MAX_SITE_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"{display}: no such file; check the path of the site file") from None
    except IsADirectoryError:
        raise UserError(f"{display}: is a folder, not a site file; give the path of a site.yml") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"{display}: cannot read the site file ({reason}); check its path and permissions") from None
    if len(content) > MAX_SITE_FILE_BYTES:
        raise UserError(f"{display}: the file is larger than {MAX_SITE_FILE_BYTES // 1024**2} MiB; "
                        "a site file is YAML text of a few KiB, check that this is the right file")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{display}: cannot read the site file (byte {exc.start + 1} is not UTF-8); "
                        "save it as UTF-8 text") from None
    return parse_site(text, path)


def parse_site(text: str, path: Path, base_dir: Path | None = None) -> Site:
    """Validate site file content; `path` names the file in messages and, unless `base_dir` is given,
    anchors the relative paths in it."""
    location = path.resolve()
    bad = next((char for char in str(location) if is_unsafe_char(char)), None)
    if bad is not None:
        # The path is written into the inventory and names the site's files there.
        raise UserError(f"{path}: the path of the site file contains {_describe(bad)}; "
                        "move it to a folder whose path has no control characters")
    checker = _Checker(str(path), base_dir or location.parent)
    data, duplicates = _read_yaml(text, path)
    errors = [
        f"{path}: line {again}: key {show_value(key)} appears again (first at line {first}); keep only one of them"
        for key, first, again in duplicates
    ]
    site = checker.site(data, location)
    errors += checker.ordered_errors(data)
    if errors:
        raise UserError(*errors)
    assert site is not None
    return site


def _read_yaml(text: str, path: Path) -> tuple[Any, list[tuple[Any, int, int]]]:
    """The data of a YAML text and its repeated keys; any YAML problem is one UserError line."""
    loader: _SiteLoader | None = None
    try:
        loader = _SiteLoader(text)
        return loader.get_single_data(), loader.duplicates
    except yaml.reader.ReaderError as exc:
        # Raised for characters YAML does not allow at all (NUL, other control characters).
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise UserError(f"{path}: line {line}, column {column}: invalid YAML: the character U+{exc.character:04X} "
                        "is not allowed in a YAML file; remove it") from None
    except _LimitError as exc:
        where = f"line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}"
        raise UserError(f"{path}: {where}: {exc.problem}; {exc.fix}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(top level)"
        problem = exc.problem or exc.context or "unreadable YAML"
        raise UserError(f"{path}: {where}: invalid YAML: {problem}; fix the syntax at that position") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: (top level): invalid YAML: {exc}; fix the file's syntax") from None
    except RecursionError:
        raise UserError(f"{path}: (top level): the YAML nests too deeply to read; "
                        f"a site file needs no more than {MAX_YAML_DEPTH} levels") from None
    finally:
        if loader is not None:
            loader.dispose()


class _LimitError(yaml.MarkedYAMLError):
    """A YAML text that is well formed but beyond what a site file needs (depth, aliases)."""

    def __init__(self, problem: str, fix: str, mark: yaml.Mark) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.fix = fix


class _SiteLoader(yaml.SafeLoader):
    """A safe loader that records repeated mapping keys (PyYAML would silently overwrite them), bounds
    nesting and aliases, and reports values Python cannot build (a 5000-digit number, 2024-13-01) at their
    position."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[Any, int, int]] = []
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        mark = event.start_mark
        tag = getattr(event, "tag", None)
        # PyYAML's constructors for the other tags (!!set, !!timestamp, !!binary, ...) crash on some input,
        # and a site file holds only text, numbers, true/false, lists and mappings.
        if tag not in _ALLOWED_TAGS:
            shown = tag.replace("tag:yaml.org,2002:", "!!")[:_SHOWN_WHOLE]
            raise _LimitError(f"the YAML tag {shown} is not used in site files",
                              "remove it (quote text that would read as a number: \"007\")", mark)
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise _LimitError(f"more than {MAX_YAML_ALIASES} aliases (*name)",
                                  "write the values out; a site file needs few anchors, if any", mark)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _LimitError(f"nested more than {MAX_YAML_DEPTH} levels deep",
                                  "a site file nests at most a few levels (aliases[0].to[0])", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:
            # Python refuses int() of more than 4300 digits; datetime refuses 2024-13-01.
            digits = "digits" in str(exc)
            problem = "a number of more than 4300 digits" if digits else f"a value that cannot be read ({exc})"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    self.duplicates.append((key, seen[key], key_node.start_mark.line + 1))
                else:
                    seen[key] = key_node.start_mark.line + 1
            except TypeError:
                pass  # an unhashable key; construct_mapping below reports it as a YAML error
        return super().construct_mapping(node, deep=deep)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _key_name(key: Any) -> str:
    """A mapping key as a field path segment; unknown keys may be anything YAML allows, at any length."""
    if not isinstance(key, str):
        return show_value(key)
    return key if len(key) <= _SHOWN_WHOLE else key[:_SHOWN_CHARACTERS] + "…"


class _Checker:
    """Walks raw YAML data, collecting every problem and building the model from what is valid."""

    def __init__(self, display: str, base_dir: Path) -> None:
        self.display = display
        self.base_dir = base_dir
        self.errors: list[tuple[str, str]] = []
        # Each alias's entry and its valid targets with their field paths, for the loop check.
        self.alias_entries: dict[str, tuple[str, list[tuple[str, str]]]] = {}

    def error(self, path: str, problem: str, fix: str) -> None:
        self.errors.append((path, f"{self.display}: {path or '(top level)'}: {problem}; {fix}"))

    def ordered_errors(self, data: Any) -> list[str]:
        """Messages in file order: by top-level key as written (missing keys first), then by list index."""
        order = [_key_name(key) for key in data] if isinstance(data, dict) else []

        def position(item: tuple[str, str]) -> tuple[int, tuple[int, ...]]:
            top = re.split(r"[.\[]", item[0], maxsplit=1)[0]
            indexes = tuple(int(n) for n in re.findall(r"\[(\d+)\]", item[0]))
            return (order.index(top) if top in order else -1, indexes)

        return [line for _, line in sorted(self.errors, key=position)]

    # -- generic shapes -------------------------------------------------------------------------------

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...], example: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {show_value(value)}", f"write it as {example}")
            return None
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(_key_name(key), allowed, n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                self.error(_join(path, _key_name(key)), "unknown key", f"{hint}allowed keys are {', '.join(allowed)}")
        return value

    def present(self, data: dict[str, Any], key: str, path: str, required: bool, fix: str) -> tuple[Any, str]:
        """The value at `key` (None when absent) and its field path; an absent required key is an error."""
        value = data.get(key)
        where = _join(path, key)
        if value is None and required:
            self.error(where, "is required", fix)
        return value, where

    def string(self, value: Any, where: str, fix: str, limit: int, what: str = "text") -> str | None:
        """`value` when it is text that stays on one line of any file it is written to: no control character
        or line break, no whitespace around it, at most `limit` characters. Otherwise record why not."""
        if not isinstance(value, str) or not value.strip():
            self.error(where, f"expected {what}, got {show_value(value)}", fix)
            return None
        bad = next((char for char in value if is_unsafe_char(char)), None)
        if bad is not None:
            self.error(where, f"{show_value(value)} contains {_describe(bad)}", fix)
            return None
        if value != value.strip():
            self.error(where, f"{show_value(value)} has whitespace at its start or end", "remove it")
            return None
        if len(value) > limit:
            self.error(where, f"{show_value(value)} is longer than {limit} characters", fix)
            return None
        return value

    def text(self, data: dict[str, Any], key: str, path: str, required: bool, fix: str, limit: int) -> str | None:
        value, where = self.present(data, key, path, required, fix)
        if value is None:
            return None
        return self.string(value, where, fix, limit)

    def items(self, data: dict[str, Any], key: str, path: str, required: bool, fix: str) -> list[Any] | None:
        value, where = self.present(data, key, path, required, fix)
        if value is None:
            return None
        if not isinstance(value, list):
            self.error(where, f"expected a list, got {show_value(value)}", fix)
            return None
        if required and not value:
            self.error(where, "the list is empty", fix)
        return value

    def size(self, data: dict[str, Any], key: str, path: str, default: str,
             bounds: tuple[str, str]) -> tuple[str, int] | None:
        value = data.get(key)
        if value is None:
            return default, size_to_bytes(default)
        where = _join(path, key)
        low, high = bounds
        fix = f"use a whole number followed by K, M, G or T, from {low} to {high}, e.g. {default}"
        if not isinstance(value, str):
            self.error(where, f"{show_value(value)} is not a valid size", fix)
            return None
        text = self.string(value, where, fix, MAX_SHORT_TEXT_LENGTH)
        if text is None:
            return None
        normal = text.upper()
        if not _SIZE_RE.fullmatch(normal):
            self.error(where, f"{show_value(value)} is not a valid size", fix)
            return None
        if not size_to_bytes(low) <= size_to_bytes(normal) <= size_to_bytes(high):
            self.error(where, f"{show_value(value)} is out of range", fix)
            return None
        return normal, size_to_bytes(normal)

    def score(self, data: dict[str, Any], key: str, path: str, default: float) -> float | None:
        value = data.get(key)
        if value is None:
            return default
        number = (isinstance(value, (int, float)) and not isinstance(value, bool)
                  and not (isinstance(value, float) and math.isnan(value)))
        if not number or not 0 < value <= SPAM_SCORE_MAX:
            problem = "is out of range" if number and value > 0 else "is not a positive score"
            self.error(_join(path, key), f"{show_value(value)} {problem}",
                       f"use a number greater than 0 and at most {SPAM_SCORE_MAX:g}, e.g. {default:g}")
            return None
        return float(value)

    def local_file(self, value: Any, path: str, fix: str) -> Path | None:
        """A controller file named relative to the site file; must exist and be readable."""
        text = self.string(value, path, fix, MAX_PATH_LENGTH, what="a file path")
        if text is None:
            return None
        try:
            file = (self.base_dir / text).resolve()
            if not file.exists():
                self.error(path, f"{show_value(value)} does not exist",
                           "give a path relative to the site file's folder")
                return None
            if not file.is_file():
                self.error(path, f"{show_value(value)} is not a regular file", fix)
                return None
            with file.open("rb") as handle:
                handle.read(1)
        except OSError as exc:
            self.error(path, f"{show_value(value)} is not readable ({exc.strerror or type(exc).__name__})",
                       "make it readable by the user running mailappliance")
            return None
        # The absolute path is written into the inventory, so the folders above the site file count too.
        bad = next((char for char in str(file) if is_unsafe_char(char)), None)
        if bad is not None:
            self.error(path, f"the full path {show_value(str(file))} contains {_describe(bad)}",
                       "move the site and its files to a folder whose path has no control characters")
            return None
        return file

    # -- sections -------------------------------------------------------------------------------------

    def site(self, data: Any, site_path: Path) -> Site | None:
        if data is None:
            self.error("", "the file is empty", "write a site definition, e.g. with `mailappliance site new`")
            return None
        top = self.mapping(data, "", _TOP_KEYS, '"key: value" lines (site:, hostname:, domains:, ...)')
        if top is None:
            return None
        name = self.site_name(top)
        hostname = self.hostname(top)
        domains = self.domains(top)
        domain_names = [d.name for d in domains]
        mailboxes = self.mailboxes(top, domain_names)
        aliases = self.aliases(top, domain_names, mailboxes)
        admin_contact = self.admin_contact(top, domain_names, mailboxes, aliases)
        self.alias_loops(domain_names, mailboxes, admin_contact)
        host = self.host(top, hostname)
        size_limit = self.size(top, "message_size_limit", "", DEFAULT_MESSAGE_SIZE_LIMIT, MESSAGE_SIZE_LIMIT_RANGE)
        tls = self.tls(top, hostname, domain_names)
        spam = self.spam(top)
        antivirus = self.antivirus(top)
        dns = self.dns(top, host, admin_contact, domain_names, mailboxes, aliases)
        login_protection = self.login_protection(top)
        trusted_relays = self.networks(top.get("trusted_relays"), "trusted_relays",
                                       "list the gateways that relay mail for the hosted domains, e.g. [192.0.2.25]")
        # Every rejected value has recorded an error, so a clean run has all parts.
        if self.errors:
            return None
        assert name and hostname and admin_contact and host and size_limit and tls and spam and antivirus and dns
        assert login_protection is not None and trusted_relays is not None
        return Site(
            path=site_path, name=name, hostname=hostname, admin_contact=admin_contact, host=host,
            domains=tuple(domains), mailboxes=tuple(mailboxes), aliases=tuple(aliases),
            message_size_limit=size_limit[0], message_size_limit_bytes=size_limit[1],
            tls=tls, spam=spam, antivirus=antivirus, dns=dns, login_protection=login_protection,
            trusted_relays=trusted_relays,
        )

    def site_name(self, top: dict[str, Any]) -> str | None:
        fix = "use 1-63 lowercase letters, digits and hyphens, starting with a letter, e.g. site: example"
        name = self.text(top, "site", "", True, fix, MAX_SHORT_TEXT_LENGTH)
        if name is not None and not is_site_name(name):
            self.error("site", f"{show_value(name)} is not a valid site name", fix)
            return None
        return name

    def hostname(self, top: dict[str, Any]) -> str | None:
        fix = "use the appliance's full DNS name, e.g. mail.example.com"
        value = self.text(top, "hostname", "", True, fix, MAX_DOMAIN_LENGTH)
        if value is None:
            return None
        if not is_domain_name(value.lower()):
            self.error("hostname", f"{show_value(value)} is not a fully qualified domain name", fix)
            return None
        return value.lower()

    def admin_contact(self, top: dict[str, Any], domains: list[str], mailboxes: list[Mailbox],
                      aliases: list[Alias]) -> str | None:
        fix = "use an email address such as postmaster@example.com"
        value = self.text(top, "admin_contact", "", True, fix, MAX_ADDRESS_LENGTH)
        if value is None:
            return None
        address = value.lower()
        if not is_email_address(address):
            self.error("admin_contact", f"{show_value(value)} is not a valid email address", fix)
            return None
        domain = address.rpartition("@")[2]
        # postmaster@ and abuse@ are delivered to admin_contact, so a hosted admin_contact needs a real
        # destination of its own or those messages would loop.
        if domain in domains and not _is_defined(address, _destinations(mailboxes, aliases), implicit=False):
            self.error("admin_contact",
                       f"{show_value(value)} is in a declared domain but is neither a mailbox nor an alias",
                       "add it to mailboxes or use an address outside the site's domains")
        return address

    def host(self, top: dict[str, Any], hostname: str | None) -> Host | None:
        raw = top.get("host")
        if raw is None:
            return Host(address=hostname or "")
        data = self.mapping(raw, "host", ("address", "user", "port", "connection"),
                            "a mapping such as {address: 192.0.2.10, user: root, port: 22}")
        if data is None:
            return None
        ok = True
        connection = data.get("connection", "ssh")
        if connection not in CONNECTIONS:
            self.error("host.connection", f"{show_value(connection)} is not supported", "use ssh or podman")
            ok = False
        address: str | None = hostname or ""
        if data.get("address") is not None:
            address = self.text(data, "address", "host", False, "give a DNS name or an IP address", MAX_DOMAIN_LENGTH)
        if address is None:
            ok = False
        elif connection == "podman":
            if not is_container_name(address):
                self.error("host.address", f"{show_value(address)} is not a valid container name",
                           "use letters, digits, dots, underscores and hyphens")
                ok = False
        elif not is_host_address(address):
            self.error("host.address", f"{show_value(address)} is not a valid host name or IP address",
                       "use a DNS name, an IPv4 or an IPv6 address")
            ok = False
        user_fix = "use a login name such as root"
        user = self.string(data.get("user", "root"), "host.user", user_fix, MAX_SHORT_TEXT_LENGTH, "a user name")
        if user is None:
            ok = False
        elif not _USER_RE.fullmatch(user):
            self.error("host.user", f"{show_value(user)} is not a valid user name", user_fix)
            ok = False
        port = data.get("port", 22)
        if connection == "podman" and "port" in data:
            self.error("host.port", "is only used with connection ssh", "remove it for a podman container")
            ok = False
        elif isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            self.error("host.port", f"{show_value(port)} is not a valid port", "use a whole number from 1 to 65535")
            ok = False
        if not ok or address is None or user is None:
            return None
        return Host(address=address, user=user, port=port, connection=connection)

    def domains(self, top: dict[str, Any]) -> list[Domain]:
        fix = "list the mail domains, e.g. domains: [{name: example.com}]"
        items = self.items(top, "domains", "", True, fix) or []
        result: list[Domain] = []
        first_seen: dict[str, str] = {}
        for index, item in enumerate(items):
            path = _join("domains", index)
            data = self.mapping(item, path, ("name", "dkim_selector"), "- name: example.com")
            if data is None:
                continue
            name_fix = "use letters, digits and hyphens in dot-separated labels"
            value = self.text(data, "name", path, True, "give the mail domain, e.g. name: example.com",
                              MAX_DOMAIN_LENGTH)
            selector_fix = "use lowercase letters, digits and hyphens (a single DNS label), e.g. mail"
            where = _join(path, "dkim_selector")
            selector = self.string(data.get("dkim_selector", DEFAULT_DKIM_SELECTOR), where, selector_fix,
                                   MAX_SHORT_TEXT_LENGTH, "a DKIM selector")
            if selector is not None and not _LABEL_RE.fullmatch(selector):
                self.error(where, f"{show_value(selector)} is not a valid DKIM selector", selector_fix)
            if selector is None or not _LABEL_RE.fullmatch(selector):
                selector = DEFAULT_DKIM_SELECTOR  # keeps the domain declared; the error stops the load anyway
            if value is None:
                continue
            name = value.lower()
            if not is_domain_name(name):
                self.error(_join(path, "name"), f"{show_value(value)} is not a valid domain name", name_fix)
                continue
            if name in first_seen:
                self.error(_join(path, "name"), f"{show_value(value)} is already declared at {first_seen[name]}",
                           "list each domain once")
                continue
            first_seen[name] = path
            result.append(Domain(name=name, dkim_selector=selector))
        return result

    def hosted_address(self, data: dict[str, Any], path: str, domains: list[str], catch_all: bool,
                       fix: str) -> str | None:
        value = self.text(data, "address", path, True, fix, MAX_ADDRESS_LENGTH)
        if value is None:
            return None
        address = value.lower()
        where = _join(path, "address")
        if catch_all and address.startswith("@"):
            valid = is_domain_name(address[1:])
        else:
            valid = is_email_address(address, hosted=True)
        if not valid:
            allowed = ("use local-part@domain with letters, digits, dots, hyphens and underscores before the @"
                       + (", or @domain for a catch-all" if catch_all else ""))
            self.error(where, f"{show_value(value)} is not a valid {'alias' if catch_all else 'mailbox'} address",
                       allowed)
            return None
        domain = address.rpartition("@")[2]
        if domain not in domains:
            declared = ", ".join(domains) if domains else "none yet"
            self.error(where, f"{show_value(value)} is not in a declared domain",
                       f"add {domain} to domains or use one of the declared domains ({declared})")
            return None
        return address

    def mailboxes(self, top: dict[str, Any], domains: list[str]) -> list[Mailbox]:
        items = self.items(top, "mailboxes", "", False,
                           "list mailboxes, e.g. mailboxes: [{address: alice@example.com}]")
        result: list[Mailbox] = []
        first_seen: dict[str, str] = {}
        for index, item in enumerate(items or []):
            path = _join("mailboxes", index)
            data = self.mapping(item, path, ("address", "quota", "name"), "- address: alice@example.com")
            if data is None:
                continue
            address = self.hosted_address(data, path, domains, False,
                                          "give the mailbox address, e.g. alice@example.com")
            quota = self.size(data, "quota", path, DEFAULT_QUOTA, QUOTA_RANGE)
            name = self.display_name(data, path)
            if address is not None and address in first_seen:
                self.error(_join(path, "address"),
                           f"{show_value(address)} is already declared at {first_seen[address]}",
                           "list each mailbox once")
                continue
            if address is not None:
                first_seen[address] = path
            if address is not None:
                # Kept even when quota or name are wrong, so later checks know the address exists; the
                # recorded error stops the load before this placeholder could be used.
                quota = quota or (DEFAULT_QUOTA, size_to_bytes(DEFAULT_QUOTA))
                result.append(Mailbox(address=address, quota=quota[0], quota_bytes=quota[1], name=name or ""))
        return result

    def display_name(self, data: dict[str, Any], path: str) -> str | None:
        value = data.get("name")
        if value is None:
            return ""
        where = _join(path, "name")
        fix = "write the person's name as plain text without : or line breaks, e.g. name: Alice Example"
        name = self.string(value, where, fix, MAX_DISPLAY_NAME_LENGTH)
        if name is None:
            return None
        # The name ends up in colon-separated passwd-file records.
        if ":" in name:
            self.error(where, f"{show_value(value)} contains a colon", fix)
            return None
        return name

    def aliases(self, top: dict[str, Any], domains: list[str], mailboxes: list[Mailbox]) -> list[Alias]:
        items = self.items(top, "aliases", "", False,
                           "list aliases, e.g. aliases: [{address: sales@example.com, to: [alice@example.com]}]")
        mailbox_addresses = {m.address for m in mailboxes}
        result: list[Alias] = []
        first_seen: dict[str, str] = {}
        hosted_targets: list[tuple[str, str]] = []
        example = "- {address: sales@example.com, to: [alice@example.com]}"
        for index, item in enumerate(items or []):
            path = _join("aliases", index)
            data = self.mapping(item, path, ("address", "to"), example)
            if data is None:
                continue
            address = self.hosted_address(data, path, domains, True,
                                          "give the alias address, e.g. sales@example.com or @example.com")
            where = _join(path, "address")
            duplicate = address is not None and address in first_seen
            if duplicate:
                self.error(where, f"{show_value(address)} is already declared at {first_seen[address]}",
                           "list each alias once and put all its targets in its to: list")
            elif address in mailbox_addresses:
                self.error(where, f"{show_value(address)} is also a mailbox",
                           "remove the alias or the mailbox (a mailbox already receives its own mail)")
            targets = self.targets(data, path)
            hosted_targets += [(where, target) for where, target in targets if target.rpartition("@")[2] in domains]
            if address is None or duplicate:
                continue
            first_seen[address] = path
            self.alias_entries[address] = (path, targets)
            # Kept with invalid targets dropped, so mail addressed to it still counts as defined below.
            result.append(Alias(address=address, to=tuple(target for _, target in targets)))
        # Targets in a hosted domain must lead somewhere, otherwise the alias accepts mail it then bounces.
        destinations = _destinations(mailboxes, result)
        for where, target in hosted_targets:
            if not _is_defined(target, destinations, implicit=True):
                self.error(where,
                           f"{show_value(target)} is in a declared domain but is neither a mailbox nor an alias",
                           "add that mailbox or alias, or fix the address")
        return result

    def targets(self, data: dict[str, Any], path: str) -> list[tuple[str, str]]:
        """The valid targets of an alias, each with its field path."""
        fix = "list one or more addresses to deliver to, e.g. to: [alice@example.com]"
        address_fix = "use local-part@domain, e.g. alice@example.com"
        result: list[tuple[str, str]] = []
        for index, value in enumerate(self.items(data, "to", path, True, fix) or []):
            where = _join(_join(path, "to"), index)
            text = self.string(value, where, address_fix, MAX_ADDRESS_LENGTH, "an email address")
            if text is None:
                continue
            if not is_email_address(text.lower()):
                self.error(where, f"{show_value(value)} is not a valid email address", address_fix)
                continue
            result.append((where, text.lower()))
        return result

    def alias_loops(self, domains: list[str], mailboxes: list[Mailbox], admin_contact: str | None) -> None:
        """Report every alias that leads back to itself: Postfix expands a → b → a to nothing deliverable."""
        graph = _AliasGraph(self.alias_entries, domains, {m.address for m in mailboxes}, admin_contact)
        fix = "make one of them deliver to a mailbox or an outside address"
        loops = graph.loops(MAX_LOOPS_REPORTED + 1)
        for where, chain in loops[:MAX_LOOPS_REPORTED]:
            self.error(where, f"alias loop {chain}", fix)
        if len(loops) > MAX_LOOPS_REPORTED:
            self.error("aliases", f"more alias loops than the {MAX_LOOPS_REPORTED} shown",
                       "fix those and validate again")

    def tls(self, top: dict[str, Any], hostname: str | None, domains: list[str]) -> Tls | None:
        raw = top.get("tls")
        if raw is None:
            return Tls()
        data = self.mapping(raw, "tls", ("source", "cert", "key"), "tls: {source: self-signed}")
        if data is None:
            return None
        source = data.get("source", "self-signed")
        if source not in TLS_SOURCES:
            self.error("tls.source", f"{show_value(source)} is not a TLS source", "use self-signed or provided")
            return None
        if source == "self-signed":
            extra = [key for key in ("cert", "key") if key in data]
            for key in extra:
                self.error(_join("tls", key), "is only used when source is provided",
                           "remove it or set source: provided")
            return None if extra else Tls()
        cert = self.pem_file(data, "cert", "CERTIFICATE", "the certificate chain (leaf first)")
        key = self.pem_file(data, "key", "PRIVATE KEY", "the private key")
        if cert is None or key is None:
            return None
        chain = self.certificate_chain(cert[0], data["cert"])
        private_key = self.private_key(key[0], data["key"])
        if chain is None or private_key is None:
            return None
        ok = self.key_matches(chain[0], private_key, data["key"])
        # MTA-STS senders fetch each domain's policy from mta-sts.<domain> over HTTPS with this certificate.
        names = ([hostname] if hostname else []) + [f"mta-sts.{domain}" for domain in domains]
        ok = self.certificate_names(chain[0], names) and ok
        ok = self.certificate_dates(chain[0]) and ok
        return Tls(source="provided", cert=cert[1], key=key[1]) if ok else None

    def pem_file(self, data: dict[str, Any], key: str, label: str, what: str) -> tuple[bytes, Path] | None:
        """The content and path of a PEM file holding at least one `label` block."""
        where = _join("tls", key)
        fix = f"give the path of {what} in PEM format, relative to the site file's folder"
        if data.get(key) is None:
            self.error(where, "is required when source is provided", fix)
            return None
        file = self.local_file(data[key], where, fix)
        if file is None:
            return None
        try:
            with file.open("rb") as stream:
                content = stream.read(MAX_PEM_FILE_BYTES + 1)
        except OSError as exc:
            self.error(where, f"{show_value(data[key])} is not readable ({exc.strerror})",
                       "make it readable by the user running mailappliance")
            return None
        if len(content) > MAX_PEM_FILE_BYTES:
            self.error(where, f"{show_value(data[key])} is larger than {MAX_PEM_FILE_BYTES // 1024**2} MiB",
                       f"give {what} alone, in PEM format")
            return None
        labels = [match.group(1).decode() for match in _PEM_BLOCK_RE.finditer(content)]
        if label not in labels and not (label == "PRIVATE KEY" and any(n.endswith("PRIVATE KEY") for n in labels)):
            self.error(where, f"{show_value(data[key])} is not a PEM {label.lower()}",
                       f"give {what} in PEM format (-----BEGIN {label}-----)")
            return None
        if content.count(_PEM_BEGIN) != len(labels):
            self.error(where, f"{show_value(data[key])} has a -----BEGIN line without its -----END line",
                       f"give {what} in PEM format, each block complete")
            return None
        return content, file

    def certificate_chain(self, content: bytes, written: str) -> list[x509.Certificate] | None:
        """Every block of tls.cert as a certificate, each followed by its issuer; None after an error."""
        where = "tls.cert"
        fix = "give only CERTIFICATE blocks, the server's certificate first, then each one's issuer"
        chain: list[x509.Certificate] = []
        for number, match in enumerate(_PEM_BLOCK_RE.finditer(content), start=1):
            label = match.group(1).decode()
            if label != "CERTIFICATE":
                self.error(where, f"block {number} of {show_value(written)} is a {label}, not a certificate",
                           f"{fix} (the key belongs in tls.key)")
                return None
            try:
                certificate = x509.load_pem_x509_certificate(match.group(0))
                # Parsed on first use; malformed ones raise here rather than in the checks below.
                _ = (certificate.subject, certificate.issuer, certificate.extensions)
            except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
                self.error(where, f"certificate {number} of {show_value(written)} cannot be parsed",
                           "give the chain your certificate authority issued, in PEM format")
                return None
            chain.append(certificate)
        for number, (certificate, issuer) in enumerate(zip(chain, chain[1:]), start=1):
            if certificate.issuer != issuer.subject:
                self.error(where, f"certificate {number + 1} ({_subject(issuer)}) did not issue certificate "
                           f"{number} ({_subject(certificate)})", fix)
                return None
        return chain

    def private_key(self, content: bytes, written: str) -> Any:
        """The private key of tls.key, which must be the only one there and have no passphrase."""
        where = "tls.key"
        blocks = [m.group(0) for m in _PEM_BLOCK_RE.finditer(content) if m.group(1).endswith(b"PRIVATE KEY")]
        if len(blocks) > 1:
            self.error(where, f"{show_value(written)} holds {len(blocks)} private keys",
                       "keep only the key of the certificate in tls.cert")
            return None
        try:
            return serialization.load_pem_private_key(blocks[0], password=None)
        except TypeError:
            self.error(where, f"{show_value(written)} is protected by a passphrase",
                       "give the key without one (Postfix, Dovecot and nginx read it unattended at start), e.g. "
                       "openssl pkey -in key.pem -out plain.pem")
        except (ValueError, UnsupportedAlgorithm):
            self.error(where, f"{show_value(written)} cannot be read as a private key",
                       "give the private key in PEM format (-----BEGIN PRIVATE KEY-----)")
        return None

    def key_matches(self, leaf: x509.Certificate, private_key: Any, written: Any) -> bool:
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        try:
            certified = leaf.public_key().public_bytes(serialization.Encoding.DER, spki)
        except (ValueError, UnsupportedAlgorithm):
            certified = b""
        if private_key.public_key().public_bytes(serialization.Encoding.DER, spki) != certified:
            self.error("tls.key", f"{show_value(written)} is not the key of the certificate in tls.cert",
                       "give the private key the first certificate of tls.cert was issued for")
            return False
        return True

    def certificate_names(self, leaf: x509.Certificate, names: list[str]) -> bool:
        try:
            extension = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            listed = [name.lower() for name in extension.value.get_values_for_type(x509.DNSName)]
        except x509.ExtensionNotFound:
            listed = []
        shown = ", ".join(n[:_SHOWN_WHOLE] for n in listed[:5]) + (", …" if len(listed) > 5 else "") if listed \
            else "no DNS names"
        missing = [name for name in names if not any(_name_covers(pattern, name) for pattern in listed)]
        for name in missing:
            self.error("tls.cert", f"the certificate does not name {name} (its subjectAltName lists {shown})",
                       "get a certificate for the hostname and mta-sts.<domain> of every domain")
        return not missing

    def certificate_dates(self, leaf: x509.Certificate) -> bool:
        now = datetime.datetime.now(datetime.UTC)
        fix = "renew it, or give a certificate that is valid now"
        if leaf.not_valid_after_utc < now:
            self.error("tls.cert", f"the certificate expired on {_when(leaf.not_valid_after_utc)}", fix)
            return False
        if leaf.not_valid_before_utc > now:
            self.error("tls.cert", f"the certificate is not valid before {_when(leaf.not_valid_before_utc)}",
                       fix + " (check this computer's clock)")
            return False
        return True

    def spam(self, top: dict[str, Any]) -> Spam | None:
        raw = top.get("spam")
        if raw is None:
            return Spam()
        data = self.mapping(raw, "spam", ("add_header", "reject", "network_checks"),
                            "spam: {add_header: 6, reject: 15, network_checks: true}")
        if data is None:
            return None
        add_header = self.score(data, "add_header", "spam", DEFAULT_SPAM_ADD_HEADER)
        reject = self.score(data, "reject", "spam", DEFAULT_SPAM_REJECT)
        if add_header is None or reject is None:
            return None
        if reject <= add_header:
            self.error("spam.reject", f"{reject:g} must be greater than spam.add_header ({add_header:g})",
                       "raise reject or lower add_header")
            return None
        network_checks = data.get("network_checks", True)
        if not isinstance(network_checks, bool):
            self.error("spam.network_checks", f"{show_value(network_checks)} is not true or false",
                       "use true (query DNS blocklists and Rspamd's public services) or false (air-gapped)")
            return None
        return Spam(add_header=add_header, reject=reject, network_checks=network_checks)

    def antivirus(self, top: dict[str, Any]) -> Antivirus | None:
        raw = top.get("antivirus")
        # The appliance never downloads public signatures, and clamd without any refuses to start.
        no_source = ("no virus signature source", "set antivirus.mirror_url (a private freshclam mirror) or "
                     "antivirus.local_databases (database files copied to the appliance)")
        if raw is None:
            self.error("antivirus", *no_source)
            return None
        data = self.mapping(raw, "antivirus", ("mirror_url", "local_databases"),
                            "antivirus: {mirror_url: http://mirror.example/, local_databases: [local.hdb]}")
        if data is None:
            return None
        ok = True
        mirror_url = ""
        raw_url = data.get("mirror_url")
        if raw_url is not None:
            url_fix = ("use http:// or https://, a host name or IP address, an optional :port and a path of "
                       "letters, digits and - . _ ~ % / + = , : @, e.g. http://clamav-mirror.internal/")
            url = self.string(raw_url, "antivirus.mirror_url", url_fix, MAX_URL_LENGTH, "a URL")
            if url is not None and not is_mirror_url(url):
                self.error("antivirus.mirror_url", f"{show_value(raw_url)} is not an http(s) URL", url_fix)
            if url is None or not is_mirror_url(url):
                ok = False
            else:
                mirror_url = url
        databases: list[Path] = []
        names: dict[str, str] = {}
        fix = "list ClamAV database files relative to the site file's folder, e.g. [local.hdb]"
        for index, value in enumerate(self.items(data, "local_databases", "antivirus", False, fix) or []):
            where = _join("antivirus.local_databases", index)
            file = self.local_file(value, where, fix)
            if file is None:
                ok = False
                continue
            if file.suffix.lower() not in CLAMAV_DATABASE_EXTENSIONS:
                self.error(where, f"{show_value(value)} does not have a ClamAV database extension",
                           f"use one of {' '.join(CLAMAV_DATABASE_EXTENSIONS)}")
                ok = False
                continue
            if file.name in names:
                self.error(where, f"{show_value(value)} has the same file name as {names[file.name]}",
                           "rename one of them (all are copied into one folder on the appliance)")
                ok = False
                continue
            names[file.name] = where
            databases.append(file)
        if ok and not mirror_url and not databases:
            self.error("antivirus", *no_source)
            ok = False
        return Antivirus(mirror_url=mirror_url, local_databases=tuple(databases)) if ok else None

    def dns(self, top: dict[str, Any], host: Host | None, admin_contact: str | None, domains: list[str],
            mailboxes: list[Mailbox], aliases: list[Alias]) -> Dns | None:
        raw = top.get("dns")
        data: dict[str, Any] | None = {}
        if raw is not None:
            data = self.mapping(raw, "dns", _DNS_KEYS, "dns: {dmarc_policy: reject, ipv4: 192.0.2.10}")
        if data is None:
            return None
        ok = True
        ttl = self.whole_number(data, "ttl", "dns", DEFAULT_DNS_TTL, DNS_TTL_RANGE, "a whole number of seconds")
        max_age = self.whole_number(data, "mta_sts_max_age", "dns", DEFAULT_MTA_STS_MAX_AGE, MTA_STS_MAX_AGE_RANGE,
                                    "a whole number of seconds (RFC 8461 allows at most a year)")
        policy = data.get("dmarc_policy", DEFAULT_DMARC_POLICY)
        if policy == "none":
            self.error("dns.dmarc_policy", '"none" only asks for reports and lets receivers deliver mail forged '
                       "in the site's domains", "use quarantine or reject")
            ok = False
        elif policy not in DMARC_POLICIES:
            self.error("dns.dmarc_policy", f"{show_value(policy)} is not a DMARC policy", "use quarantine or reject")
            ok = False
        mode = data.get("mta_sts_mode", DEFAULT_MTA_STS_MODE)
        if mode == "none":
            self.error("dns.mta_sts_mode", '"none" withdraws the MTA-STS policy, so senders stop requiring TLS',
                       "use enforce, or testing while TLS-RPT reports are reviewed")
            ok = False
        elif mode not in MTA_STS_MODES:
            self.error("dns.mta_sts_mode", f"{show_value(mode)} is not an MTA-STS mode", "use enforce or testing")
            ok = False
        reports: dict[str, str | None] = {}
        for key in ("dmarc_rua", "tlsrpt_rua"):
            reports[key] = self.report_address(data, key, admin_contact, domains, mailboxes, aliases)
        addresses: dict[int, str | None] = {}
        for version in (4, 6):
            addresses[version] = self.public_address(data, version, host)
        if not ok or ttl is None or max_age is None or None in reports.values() or None in addresses.values():
            return None
        return Dns(ttl=ttl, dmarc_policy=policy, dmarc_rua=reports["dmarc_rua"] or "",
                   tlsrpt_rua=reports["tlsrpt_rua"] or "", mta_sts_mode=mode, mta_sts_max_age=max_age,
                   ipv4=addresses[4] or "", ipv6=addresses[6] or "")

    def login_protection(self, top: dict[str, Any]) -> LoginProtection | None:
        raw = top.get("login_protection")
        if raw is None:
            return LoginProtection()
        data = self.mapping(raw, "login_protection", _LOGIN_PROTECTION_KEYS,
                            "login_protection: {max_failures: 5, find_time: 600, ban_time: 3600, allow: [192.0.2.50]}")
        if data is None:
            return None
        path = "login_protection"
        max_failures = self.whole_number(data, "max_failures", path, DEFAULT_MAX_FAILURES, MAX_FAILURES_RANGE,
                                         "a whole number of failed logins")
        find_time = self.whole_number(data, "find_time", path, DEFAULT_FIND_TIME, FIND_TIME_RANGE,
                                      "a whole number of seconds")
        ban_time = self.whole_number(data, "ban_time", path, DEFAULT_BAN_TIME, BAN_TIME_RANGE,
                                     "a whole number of seconds")
        allow = self.networks(data.get("allow"), "login_protection.allow",
                              "list the monitoring hosts never to block, e.g. [192.0.2.50, 198.51.100.0/24]")
        if max_failures is None or find_time is None or ban_time is None or allow is None:
            return None
        return LoginProtection(max_failures=max_failures, find_time=find_time, ban_time=ban_time, allow=allow)

    def networks(self, value: Any, where: str, fix: str) -> tuple[str, ...] | None:
        """A list of IP addresses or CIDR networks, in canonical form (e.g. 192.0.2.0/24)."""
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(where, f"expected a list, got {show_value(value)}", fix)
            return None
        if len(value) > MAX_NETWORKS:
            self.error(where, f"lists {len(value)} networks", f"list at most {MAX_NETWORKS}; use wider prefixes")
            return None
        result: list[str] = []
        for index, item in enumerate(value):
            item_where = _join(where, index)
            text = self.string(item, item_where, fix, MAX_SHORT_TEXT_LENGTH) if isinstance(item, str) else None
            if not isinstance(item, str):
                self.error(item_where, f"{show_value(item)} is not an address or network", fix)
            if text is None:
                continue
            try:
                network = ipaddress.ip_network(text, strict=False) if "%" not in text else None
            except ValueError:
                network = None
            if network is None:
                self.error(item_where, f"{show_value(item)} is not an IP address or network",
                           "write an address (192.0.2.50, 2001:db8::50) or a network (192.0.2.0/24)")
                continue
            if network.prefixlen == 0:
                self.error(item_where, f"{show_value(item)} is every address",
                           "name the hosts or networks you mean; the whole internet cannot be trusted")
                continue
            result.append(str(network))
        return tuple(result) if len(result) == len(value) else None

    def whole_number(self, data: dict[str, Any], key: str, path: str, default: int, bounds: tuple[int, int],
                     what: str) -> int | None:
        value = data.get(key, default)
        low, high = bounds
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            number = isinstance(value, int) and not isinstance(value, bool)
            problem = "is out of range" if number else "is not a whole number"
            self.error(_join(path, key), f"{show_value(value)} {problem}",
                       f"use {what} from {low} to {high}, e.g. {default}")
            return None
        return value

    def report_address(self, data: dict[str, Any], key: str, admin_contact: str | None, domains: list[str],
                       mailboxes: list[Mailbox], aliases: list[Alias]) -> str | None:
        """A report address (mailto: optional); admin_contact when absent, "" while admin_contact is invalid."""
        where = _join("dns", key)
        value = data.get(key)
        if value is None:
            return admin_contact or ""
        fix = "give the address that receives the reports, e.g. dmarc-reports@example.com"
        text = self.string(value, where, fix, MAX_ADDRESS_LENGTH + len("mailto:")) if isinstance(value, str) else ""
        if text is None:
            return None
        address = text.lower().removeprefix("mailto:")
        if not is_email_address(address):
            self.error(where, f"{show_value(value)} is not a valid email address", fix)
            return None
        # Reports to a hosted address nobody receives would bounce at the appliance itself.
        defined = _is_defined(address, _destinations(mailboxes, aliases), implicit=True)
        if address.rpartition("@")[2] in domains and not defined:
            self.error(where, f"{show_value(value)} is in a declared domain but is neither a mailbox nor an alias",
                       "add that mailbox or alias, or use another address")
            return None
        return address

    def public_address(self, data: dict[str, Any], version: int, host: Host | None) -> str | None:
        """The appliance's public IPv4 or IPv6 address: dns.ipv4/ipv6, else host.address if it is one, else ""."""
        key = f"ipv{version}"
        where = _join("dns", key)
        value = data.get(key)
        if value is None:
            if host is None or host.connection != "ssh":
                return ""
            try:
                address = ipaddress.ip_address(host.address)
            except ValueError:
                return ""
            return str(address) if address.version == version and _is_public_candidate(address) else ""
        example = "192.0.2.10" if version == 4 else "2001:db8::10"
        fix = f"give the address the internet reaches the appliance at, e.g. {key}: {example}"
        text = self.string(value, where, fix, MAX_SHORT_TEXT_LENGTH) if isinstance(value, str) else ""
        if text is None:
            return None
        try:
            address = ipaddress.ip_address(text) if text and "%" not in text else None
        except ValueError:
            address = None
        if address is None or address.version != version:
            self.error(where, f"{show_value(value)} is not an IPv{version} address", fix)
            return None
        if not _is_public_candidate(address):
            self.error(where, f"{show_value(value)} is a loopback, link-local, multicast or unspecified address", fix)
            return None
        return str(address)


class _AliasGraph:
    """Where mail to each hosted alias goes, as Postfix's virtual alias expansion follows it.

    Nodes are the explicit aliases (catch-alls included) and the implicit postmaster@/abuse@ of each domain
    (which go to admin_contact). A target leaves the graph when it is a mailbox or outside the site's
    domains; otherwise it is its own explicit alias, the implicit address, or the domain's catch-all.
    """

    def __init__(self, entries: dict[str, tuple[str, list[tuple[str, str]]]], domains: list[str],
                 mailboxes: set[str], admin_contact: str | None) -> None:
        self.domains = set(domains)
        self.mailboxes = mailboxes
        self.entries = entries
        # node -> [(target as written, field path of the target, next node)]
        self.edges: dict[str, list[tuple[str, str, str]]] = {}
        self.order: dict[str, int] = {}
        for address, (_, targets) in entries.items():
            self.order[address] = len(self.order)
            self.edges[address] = [(t, where, node) for where, t in targets if (node := self.node_of(t))]
        for node in [n for edges in list(self.edges.values()) for _, _, n in edges if n not in self.edges]:
            # Implicit addresses: only reachable as targets, and only admin_contact follows them.
            self.order.setdefault(node, len(self.order))
            follow = self.node_of(admin_contact) if admin_contact else None
            self.edges[node] = [(admin_contact, "admin_contact", follow)] if follow in entries else []

    def node_of(self, address: str) -> str | None:
        local, _, domain = address.rpartition("@")
        if domain not in self.domains or address in self.mailboxes:
            return None
        if address in self.entries:
            return address
        if local in IMPLICIT_LOCAL_PARTS:
            return address
        catch_all = f"@{domain}"
        return catch_all if catch_all in self.entries else None

    def loops(self, limit: int) -> list[tuple[str, str]]:
        """Up to `limit` loops as (field path, "a → b → a"), each through an edge no earlier loop used, so a
        ring of thousands of aliases costs one search."""
        cyclic = self.cyclic_nodes()
        used: set[tuple[str, int]] = set()
        found: list[tuple[str, str]] = []
        for start in sorted(cyclic, key=self.order.__getitem__):
            for index, (_, _, first) in enumerate(self.edges[start]):
                if (start, index) in used or first not in cyclic:
                    continue
                path = self.shortest_path(first, start, cyclic)
                if path is None:
                    continue
                hops = [(start, index)] + path
                used.update(hops)
                # Told from the loop's first alias in the file, and placed at the target that closes it.
                first_hop = min(range(len(hops)), key=lambda n: self.order[hops[n][0]])
                hops = hops[first_hop:] + hops[:first_hop]
                found.append((self.edges[hops[-1][0]][hops[-1][1]][1], self.describe(hops)))
                if len(found) == limit:
                    return found
        return found

    def cyclic_nodes(self) -> set[str]:
        """Nodes on some cycle: those in a strongly connected component of two or more, or with a self-edge."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        result: set[str] = set()
        for root in self.edges:
            if root in index:
                continue
            # Tarjan's algorithm without recursion: a site may hold thousands of aliases.
            work: list[tuple[str, int]] = [(root, 0)]
            while work:
                node, position = work.pop()
                if position == 0:
                    index[node] = low[node] = len(index)
                    stack.append(node)
                    on_stack.add(node)
                edges = self.edges[node]
                if position > 0:
                    child = edges[position - 1][2]
                    low[node] = min(low[node], low[child])
                while position < len(edges):
                    child = edges[position][2]
                    position += 1
                    if child not in index:
                        work.append((node, position))
                        work.append((child, 0))
                        break
                    if child in on_stack:
                        low[node] = min(low[node], index[child])
                else:
                    if low[node] == index[node]:
                        component = []
                        while True:
                            member = stack.pop()
                            on_stack.discard(member)
                            component.append(member)
                            if member == node:
                                break
                        if len(component) > 1 or any(n == node for _, _, n in edges):
                            result.update(component)
        return result

    def shortest_path(self, source: str, target: str, allowed: set[str]) -> list[tuple[str, int]] | None:
        """The edges (node, edge index) of a shortest walk from `source` to `target` inside `allowed`."""
        if source == target:
            return []
        previous: dict[str, tuple[str, int]] = {}
        queue = deque([source])
        seen = {source}
        while queue:
            node = queue.popleft()
            for number, (_, _, child) in enumerate(self.edges[node]):
                if child in seen or child not in allowed:
                    continue
                previous[child] = (node, number)
                if child == target:
                    path = []
                    while child != source:
                        path.append(previous[child])
                        child = previous[child][0]
                    return path[::-1]
                seen.add(child)
                queue.append(child)
        return None

    def describe(self, hops: list[tuple[str, int]]) -> str:
        shown = [hops[0][0]]
        for node, number in hops:
            written, _, reached = self.edges[node][number]
            shown.append(written if written == reached else f"{written} (caught by {reached})")
        if len(shown) > 6:
            shown = shown[:3] + [f"… {len(shown) - 5} more …"] + shown[-2:]
        return " → ".join(shown)


def _is_public_candidate(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address could be where others reach the appliance (private networks included)."""
    return not (address.is_loopback or address.is_link_local or address.is_multicast or address.is_unspecified)


def _destinations(mailboxes: list[Mailbox], aliases: list[Alias]) -> set[str]:
    """The hosted addresses that take mail: mailboxes, aliases and catch-alls (@domain)."""
    return {m.address for m in mailboxes} | {a.address for a in aliases}


def _is_defined(address: str, destinations: set[str], implicit: bool) -> bool:
    """Whether mail to a hosted address has a destination (a mailbox, an alias or a catch-all)."""
    local, _, domain = address.rpartition("@")
    if implicit and local in IMPLICIT_LOCAL_PARTS:
        return True
    return address in destinations or f"@{domain}" in destinations


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
