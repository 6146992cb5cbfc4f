"""The site model: load a site file (site.yml), check every rule of the schema and return typed data.

All problems in a file are collected and reported together, one line each, in the form
`<file>: <field path>: <what is wrong>; <what is allowed or how to fix it>`.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from mailappliance.errors import UserError

SITE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Local parts of addresses hosted here become Maildir paths and passwd-file keys, so they are held to a
# conservative set; addresses elsewhere (alias targets, the admin contact) may use any dot-atom.
_LOCAL_PART_HOSTED_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]|\.(?=[a-z0-9_-]))*$")
_LOCAL_PART_ANY_RE = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_SIZE_RE = re.compile(r"^([1-9][0-9]*)([KMGT])$")
_SIZE_FACTORS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_CONTAINER_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")

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

_TOP_KEYS = ("site", "hostname", "admin_contact", "host", "domains", "mailboxes", "aliases",
             "message_size_limit", "tls", "spam", "antivirus", "dns")
_DNS_KEYS = ("ttl", "dmarc_policy", "dmarc_rua", "tlsrpt_rua", "mta_sts_mode", "mta_sts_max_age", "ipv4", "ipv6")


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


def is_site_name(value: str) -> bool:
    return bool(SITE_NAME_RE.match(value))


def is_domain_name(value: str) -> bool:
    """A fully qualified DNS name: two or more LDH labels, the last one not all digits."""
    labels = value.split(".")
    return (
        len(value) <= 253
        and len(labels) >= 2
        and all(_LABEL_RE.match(label) for label in labels)
        and not labels[-1].isdigit()
    )


def is_container_name(value: str) -> bool:
    return bool(_CONTAINER_RE.match(value))


def is_email_address(value: str, hosted: bool = False) -> bool:
    local, sep, domain = value.rpartition("@")
    pattern = _LOCAL_PART_HOSTED_RE if hosted else _LOCAL_PART_ANY_RE
    return bool(sep) and len(local) <= 64 and bool(pattern.match(local)) and is_domain_name(domain)


def size_to_bytes(value: str) -> int:
    """Convert a validated size such as "25M" to bytes (binary multiples, as Postfix and Dovecot count)."""
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(f"not a size: {value!r}")
    return int(match.group(1)) * _SIZE_FACTORS[match.group(2)]


def resolve_site_file(site: str, inventory_root: Path) -> Path:
    """Map the SITE argument of a command to a site file: a site name or a path to a site file."""
    looks_like_path = os.sep in site or site.endswith((".yml", ".yaml")) or Path(site).is_file()
    if looks_like_path:
        path = Path(site)
        if not path.is_file():
            raise UserError(f"{site}: no such site file; give a site name or the path of an existing site.yml")
        return path
    if not is_site_name(site):
        raise UserError(
            f"{_show(site)} is neither a site name nor a path to a site file; use a name made of lowercase "
            "letters, digits and hyphens, or a path ending in .yml"
        )
    path = inventory_root / site / "site.yml"
    if not path.is_file():
        raise UserError(
            f"{path}: no such file, so there is no site named {_show(site)}; create it with "
            f"`mailappliance site new {site} --domain DOMAIN --hostname FQDN` or pass the path of a site file"
        )
    return path


def load_site(path: Path) -> Site:
    """Read and validate a site file; raise UserError with one line per problem found."""
    display = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{display}: no such file; check the path of the site file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"{display}: cannot read the site file ({reason}); "
                        "check its permissions and encoding") from None
    return parse_site(text, path)


def parse_site(text: str, path: Path) -> Site:
    """Validate site file content; `path` names the file in messages and anchors relative paths."""
    checker = _Checker(str(path), path.resolve().parent)
    loader = _DuplicateKeyLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(top level)"
        problem = exc.problem or exc.context or "unreadable YAML"
        raise UserError(f"{path}: {where}: invalid YAML: {problem}; fix the syntax at that position") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: (top level): invalid YAML: {exc}; fix the file's syntax") from None
    finally:
        loader.dispose()
    errors = [
        f"{path}: line {again}: key {_show(key)} appears again (first at line {first}); keep only one of them"
        for key, first, again in loader.duplicates
    ]
    site = checker.site(data, path.resolve())
    errors += checker.ordered_errors(data)
    if errors:
        raise UserError(*errors)
    assert site is not None
    return site


class _DuplicateKeyLoader(yaml.SafeLoader):
    """A safe loader that records repeated mapping keys, which PyYAML would silently overwrite."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[Any, int, int]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    self.duplicates.append((key, seen[key], key_node.start_mark.line + 1))
                else:
                    seen[key] = key_node.start_mark.line + 1
            except TypeError:
                pass  # an unhashable key; construct_mapping below reports it as a YAML error
        return super().construct_mapping(node, deep=deep)


def _show(value: Any) -> str:
    """Quote a value the way it would be written in YAML, for messages."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class _Checker:
    """Walks raw YAML data, collecting every problem and building the model from what is valid."""

    def __init__(self, display: str, base_dir: Path) -> None:
        self.display = display
        self.base_dir = base_dir
        self.errors: list[tuple[str, str]] = []

    def error(self, path: str, problem: str, fix: str) -> None:
        self.errors.append((path, f"{self.display}: {path or '(top level)'}: {problem}; {fix}"))

    def ordered_errors(self, data: Any) -> list[str]:
        """Messages in file order: by top-level key as written (missing keys first), then by list index."""
        order = [str(key) for key in data] if isinstance(data, dict) else []

        def position(item: tuple[str, str]) -> tuple[int, tuple[int, ...]]:
            top = re.split(r"[.\[]", item[0], maxsplit=1)[0]
            indexes = tuple(int(n) for n in re.findall(r"\[(\d+)\]", item[0]))
            return (order.index(top) if top in order else -1, indexes)

        return [line for _, line in sorted(self.errors, key=position)]

    # -- generic shapes -------------------------------------------------------------------------------

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...], example: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {_show(value)}", f"write it as {example}")
            return None
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                self.error(_join(path, str(key)), "unknown key", f"{hint}allowed keys are {', '.join(allowed)}")
        return value

    def present(self, data: dict[str, Any], key: str, path: str, required: bool, fix: str) -> tuple[Any, str]:
        """The value at `key` (None when absent) and its field path; an absent required key is an error."""
        value = data.get(key)
        where = _join(path, key)
        if value is None and required:
            self.error(where, "is required", fix)
        return value, where

    def text(self, data: dict[str, Any], key: str, path: str, required: bool, fix: str) -> str | None:
        value, where = self.present(data, key, path, required, fix)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.error(where, f"expected text, got {_show(value)}", fix)
            return None
        return value.strip()

    def items(self, data: dict[str, Any], key: str, path: str, required: bool, fix: str) -> list[Any] | None:
        value, where = self.present(data, key, path, required, fix)
        if value is None:
            return None
        if not isinstance(value, list):
            self.error(where, f"expected a list, got {_show(value)}", fix)
            return None
        if required and not value:
            self.error(where, "the list is empty", fix)
        return value

    def size(self, data: dict[str, Any], key: str, path: str, default: str) -> tuple[str, int] | None:
        value = data.get(key)
        if value is None:
            return default, size_to_bytes(default)
        if isinstance(value, str) and _SIZE_RE.match(value.strip().upper()):
            normal = value.strip().upper()
            return normal, size_to_bytes(normal)
        self.error(_join(path, key), f"{_show(value)} is not a valid size",
                   "use a whole number followed by K, M, G or T, e.g. 512M or 2G")
        return None

    def score(self, data: dict[str, Any], key: str, path: str, default: float) -> float | None:
        value = data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            self.error(_join(path, key), f"{_show(value)} is not a positive score",
                       f"use a number greater than 0, e.g. {default:g}")
            return None
        return float(value)

    def local_file(self, value: Any, path: str, fix: str) -> Path | None:
        """A controller file named relative to the site file; must exist and be readable."""
        if not isinstance(value, str) or not value.strip():
            self.error(path, f"expected a file path, got {_show(value)}", fix)
            return None
        file = (self.base_dir / value.strip()).resolve()
        if not file.exists():
            self.error(path, f"{_show(value)} does not exist", "give a path relative to the site file's folder")
            return None
        if not file.is_file():
            self.error(path, f"{_show(value)} is not a regular file", fix)
            return None
        try:
            with file.open("rb") as handle:
                handle.read(1)
        except OSError as exc:
            self.error(path, f"{_show(value)} is not readable ({exc.strerror})",
                       "make it readable by the user running mailappliance")
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
        host = self.host(top, hostname)
        size_limit = self.size(top, "message_size_limit", "", DEFAULT_MESSAGE_SIZE_LIMIT)
        tls = self.tls(top)
        spam = self.spam(top)
        antivirus = self.antivirus(top)
        dns = self.dns(top, host, admin_contact, domain_names, mailboxes, aliases)
        # Every rejected value has recorded an error, so a clean run has all parts.
        if self.errors:
            return None
        assert name and hostname and admin_contact and host and size_limit and tls and spam and antivirus and dns
        return Site(
            path=site_path, name=name, hostname=hostname, admin_contact=admin_contact, host=host,
            domains=tuple(domains), mailboxes=tuple(mailboxes), aliases=tuple(aliases),
            message_size_limit=size_limit[0], message_size_limit_bytes=size_limit[1],
            tls=tls, spam=spam, antivirus=antivirus, dns=dns,
        )

    def site_name(self, top: dict[str, Any]) -> str | None:
        fix = "use 1-63 lowercase letters, digits and hyphens, starting with a letter, e.g. site: example"
        name = self.text(top, "site", "", True, fix)
        if name is not None and not is_site_name(name):
            self.error("site", f"{_show(name)} is not a valid site name", fix)
            return None
        return name

    def hostname(self, top: dict[str, Any]) -> str | None:
        fix = "use the appliance's full DNS name, e.g. mail.example.com"
        value = self.text(top, "hostname", "", True, fix)
        if value is None:
            return None
        if not is_domain_name(value.lower()):
            self.error("hostname", f"{_show(value)} is not a fully qualified domain name", fix)
            return None
        return value.lower()

    def admin_contact(self, top: dict[str, Any], domains: list[str], mailboxes: list[Mailbox],
                      aliases: list[Alias]) -> str | None:
        fix = "use an email address such as postmaster@example.com"
        value = self.text(top, "admin_contact", "", True, fix)
        if value is None:
            return None
        address = value.lower()
        if not is_email_address(address):
            self.error("admin_contact", f"{_show(value)} is not a valid email address", fix)
            return None
        domain = address.rpartition("@")[2]
        # postmaster@ and abuse@ are delivered to admin_contact, so a hosted admin_contact needs a real
        # destination of its own or those messages would loop.
        if domain in domains and not _is_defined(address, mailboxes, aliases, implicit=False):
            self.error("admin_contact", f"{_show(value)} is in a declared domain but is neither a mailbox nor an alias",
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
            self.error("host.connection", f"{_show(connection)} is not supported", "use ssh or podman")
            ok = False
        address: str | None = hostname or ""
        if data.get("address") is not None:
            address = self.text(data, "address", "host", False, "give a DNS name or an IP address")
        if address is None:
            ok = False
        elif connection == "podman":
            if not is_container_name(address):
                self.error("host.address", f"{_show(address)} is not a valid container name",
                           "use letters, digits, dots, underscores and hyphens")
                ok = False
        elif not is_host_address(address):
            self.error("host.address", f"{_show(address)} is not a valid host name or IP address",
                       "use a DNS name, an IPv4 or an IPv6 address")
            ok = False
        user = data.get("user", "root")
        if not isinstance(user, str) or not _USER_RE.match(user):
            self.error("host.user", f"{_show(user)} is not a valid user name", "use a login name such as root")
            ok = False
        port = data.get("port", 22)
        if connection == "podman" and "port" in data:
            self.error("host.port", "is only used with connection ssh", "remove it for a podman container")
            ok = False
        elif isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            self.error("host.port", f"{_show(port)} is not a valid port", "use a whole number from 1 to 65535")
            ok = False
        if not ok or address is None:
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
            value = self.text(data, "name", path, True, "give the mail domain, e.g. name: example.com")
            selector = data.get("dkim_selector", DEFAULT_DKIM_SELECTOR)
            if not isinstance(selector, str) or not _LABEL_RE.match(selector):
                self.error(_join(path, "dkim_selector"), f"{_show(selector)} is not a valid DKIM selector",
                           "use lowercase letters, digits and hyphens (a single DNS label), e.g. mail")
                selector = DEFAULT_DKIM_SELECTOR  # keeps the domain declared; the error stops the load anyway
            if value is None:
                continue
            name = value.lower()
            if not is_domain_name(name):
                self.error(_join(path, "name"), f"{_show(value)} is not a valid domain name", name_fix)
                continue
            if name in first_seen:
                self.error(_join(path, "name"), f"{_show(value)} is already declared at {first_seen[name]}",
                           "list each domain once")
                continue
            first_seen[name] = path
            result.append(Domain(name=name, dkim_selector=selector))
        return result

    def hosted_address(self, data: dict[str, Any], path: str, domains: list[str], catch_all: bool,
                       fix: str) -> str | None:
        value = self.text(data, "address", path, True, fix)
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
            self.error(where, f"{_show(value)} is not a valid {'alias' if catch_all else 'mailbox'} address", allowed)
            return None
        domain = address.rpartition("@")[2]
        if domain not in domains:
            declared = ", ".join(domains) if domains else "none yet"
            self.error(where, f"{_show(value)} is not in a declared domain",
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
            quota = self.size(data, "quota", path, DEFAULT_QUOTA)
            name = self.display_name(data, path)
            if address is not None and address in first_seen:
                self.error(_join(path, "address"), f"{_show(address)} is already declared at {first_seen[address]}",
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
        if not isinstance(value, str):
            self.error(where, f"expected text, got {_show(value)}", "write the person's name, e.g. name: Alice Example")
            return None
        # The name may end up in colon-separated passwd-file records, one per line.
        if ":" in value or any(ord(char) < 32 for char in value):
            self.error(where, f"{_show(value)} contains a colon or a control character",
                       "use plain text without : or line breaks")
            return None
        return value.strip()

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
                self.error(where, f"{_show(address)} is already declared at {first_seen[address]}",
                           "list each alias once and put all its targets in its to: list")
            elif address in mailbox_addresses:
                self.error(where, f"{_show(address)} is also a mailbox",
                           "remove the alias or the mailbox (a mailbox already receives its own mail)")
            targets = self.targets(data, path)
            hosted_targets += [(where, target) for where, target in targets if target.rpartition("@")[2] in domains]
            if address is None or duplicate:
                continue
            first_seen[address] = path
            # Kept with invalid targets dropped, so mail addressed to it still counts as defined below.
            result.append(Alias(address=address, to=tuple(target for _, target in targets)))
        # Targets in a hosted domain must lead somewhere, otherwise the alias accepts mail it then bounces.
        for where, target in hosted_targets:
            if not _is_defined(target, mailboxes, result, implicit=True):
                self.error(where, f"{_show(target)} is in a declared domain but is neither a mailbox nor an alias",
                           "add that mailbox or alias, or fix the address")
        return result

    def targets(self, data: dict[str, Any], path: str) -> list[tuple[str, str]]:
        """The valid targets of an alias, each with its field path."""
        fix = "list one or more addresses to deliver to, e.g. to: [alice@example.com]"
        result: list[tuple[str, str]] = []
        for index, value in enumerate(self.items(data, "to", path, True, fix) or []):
            where = _join(_join(path, "to"), index)
            if not isinstance(value, str) or not is_email_address(value.strip().lower()):
                self.error(where, f"{_show(value)} is not a valid email address",
                           "use local-part@domain, e.g. alice@example.com")
                continue
            result.append((where, value.strip().lower()))
        return result

    def tls(self, top: dict[str, Any]) -> Tls | None:
        raw = top.get("tls")
        if raw is None:
            return Tls()
        data = self.mapping(raw, "tls", ("source", "cert", "key"), "tls: {source: self-signed}")
        if data is None:
            return None
        source = data.get("source", "self-signed")
        if source not in TLS_SOURCES:
            self.error("tls.source", f"{_show(source)} is not a TLS source", "use self-signed or provided")
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
        return Tls(source="provided", cert=cert, key=key)

    def pem_file(self, data: dict[str, Any], key: str, label: str, what: str) -> Path | None:
        where = _join("tls", key)
        fix = f"give the path of {what} in PEM format, relative to the site file's folder"
        if data.get(key) is None:
            self.error(where, "is required when source is provided", fix)
            return None
        file = self.local_file(data[key], where, fix)
        if file is None:
            return None
        content = file.read_bytes()
        if f"-----BEGIN {label}-----".encode() not in content and not (
            label == "PRIVATE KEY" and re.search(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----", content)
        ):
            self.error(where, f"{_show(data[key])} is not a PEM {label.lower()}",
                       f"give {what} in PEM format (-----BEGIN {label}-----)")
            return None
        return file

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
            self.error("spam.network_checks", f"{_show(network_checks)} is not true or false",
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
            parsed = urlparse(raw_url) if isinstance(raw_url, str) else None
            if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
                self.error("antivirus.mirror_url", f"{_show(raw_url)} is not an http(s) URL",
                           "use e.g. http://clamav-mirror.internal/")
                ok = False
            else:
                mirror_url = raw_url
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
                self.error(where, f"{_show(value)} does not have a ClamAV database extension",
                           f"use one of {' '.join(CLAMAV_DATABASE_EXTENSIONS)}")
                ok = False
                continue
            if file.name in names:
                self.error(where, f"{_show(value)} has the same file name as {names[file.name]}",
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
            self.error("dns.dmarc_policy", f"{_show(policy)} is not a DMARC policy", "use quarantine or reject")
            ok = False
        mode = data.get("mta_sts_mode", DEFAULT_MTA_STS_MODE)
        if mode == "none":
            self.error("dns.mta_sts_mode", '"none" withdraws the MTA-STS policy, so senders stop requiring TLS',
                       "use enforce, or testing while TLS-RPT reports are reviewed")
            ok = False
        elif mode not in MTA_STS_MODES:
            self.error("dns.mta_sts_mode", f"{_show(mode)} is not an MTA-STS mode", "use enforce or testing")
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

    def whole_number(self, data: dict[str, Any], key: str, path: str, default: int, bounds: tuple[int, int],
                     what: str) -> int | None:
        value = data.get(key, default)
        low, high = bounds
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            number = isinstance(value, int) and not isinstance(value, bool)
            problem = "is out of range" if number else "is not a whole number"
            self.error(_join(path, key), f"{_show(value)} {problem}",
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
        address = value.strip().lower().removeprefix("mailto:") if isinstance(value, str) else ""
        if not is_email_address(address):
            self.error(where, f"{_show(value)} is not a valid email address", fix)
            return None
        # Reports to a hosted address nobody receives would bounce at the appliance itself.
        if address.rpartition("@")[2] in domains and not _is_defined(address, mailboxes, aliases, implicit=True):
            self.error(where, f"{_show(value)} is in a declared domain but is neither a mailbox nor an alias",
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
        try:
            address = ipaddress.ip_address(value.strip()) if isinstance(value, str) else None
        except ValueError:
            address = None
        if address is None or address.version != version:
            self.error(where, f"{_show(value)} is not an IPv{version} address", fix)
            return None
        if not _is_public_candidate(address):
            self.error(where, f"{_show(value)} is a loopback, link-local, multicast or unspecified address", fix)
            return None
        return str(address)


def _is_public_candidate(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address could be where others reach the appliance (private networks included)."""
    return not (address.is_loopback or address.is_link_local or address.is_multicast or address.is_unspecified)


def _is_defined(address: str, mailboxes: list[Mailbox], aliases: list[Alias], implicit: bool) -> bool:
    """Whether mail to a hosted address has a destination (a mailbox, an alias or a catch-all)."""
    local, _, domain = address.rpartition("@")
    if implicit and local in IMPLICIT_LOCAL_PARTS:
        return True
    return (
        any(m.address == address for m in mailboxes)
        or any(a.address in (address, f"@{domain}") for a in aliases)
    )


def is_host_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        pass
    labels = value.lower().split(".")
    return len(value) <= 253 and all(_LABEL_RE.match(label) for label in labels)
