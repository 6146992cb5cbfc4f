"""Every text field of the site model, found by walking its dataclasses, fed line breaks, control characters,
quotes, comment and statement characters and over-long values: the load either refuses the value with
one-line messages naming the file and the field, or the value it keeps (in the model and in the inventory
data) holds no control character or line break."""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import certificates
from conftest import EICAR_HDB
from mailappliance.errors import UserError, is_unsafe_char
from mailappliance.inventory import hosts_data, site_vars
from mailappliance.site import Site, load_site

# A site with every key of the site file set, so every field of the model comes from the file.
POPULATED_SITE: dict = {
    "site": "molecule",
    "hostname": "mail.alpha.test",
    "admin_contact": "admin@outside.example",
    "host": {"address": "192.0.2.10", "user": "root", "port": 22, "connection": "ssh"},
    "domains": [{"name": "alpha.test", "dkim_selector": "mail"}, {"name": "beta.test", "dkim_selector": "mail"}],
    "mailboxes": [{"address": "alice@alpha.test", "quota": "1G", "name": "Alice Example"}],
    "aliases": [{"address": "sales@alpha.test", "to": ["alice@alpha.test"]}],
    "message_size_limit": "25M",
    "tls": {"source": "provided", "cert": "tls/cert.pem", "key": "tls/key.pem"},
    "spam": {"add_header": 6, "reject": 15, "network_checks": True},
    "antivirus": {"mirror_url": "http://clamav-mirror.internal/", "local_databases": ["eicar.hdb"]},
    "dns": {"ttl": 3600, "dmarc_policy": "reject", "dmarc_rua": "alice@alpha.test", "tlsrpt_rua": "alice@alpha.test",
            "mta_sts_mode": "enforce", "mta_sts_max_age": 604800, "ipv4": "192.0.2.10", "ipv6": "2001:db8::10",
            "resolvers": ["192.0.2.53", "2001:db8::53"], "dnssec_validation": True, "air_gapped": False},
    "login_protection": {"max_failures": 5, "find_time": 600, "ban_time": 3600, "allow": ["192.0.2.50/32"]},
    "trusted_relays": ["198.51.100.0/24"],
    "outbound": {
        "carriers": {
            "isp1": {"type": "relay", "host": "smtp.isp1.example", "port": 587, "tls": "verify",
                     "username": "acme-relay", "spf": ["include:_spf.isp1.example"],
                     "source_address": "192.0.2.11", "helo_name": "out.alpha.test",
                     "limits": {"concurrency_per_destination": 10, "messages_per_minute": 30}},
        },
        "routes": [{"domains": ["partner.example", "file:overseas.txt"], "channels": ["orders"],
                    "carriers": ["direct", "isp1"]}],
        "channels": {"orders": {"dkim_selector": "orders", "signing_domain": "alpha.test", "bounce_domain": "beta.test",
                                "submission_port": 2587, "process_limit": 100}},
        "accounts": {"shop": {"channel": "orders", "senders": ["shop@alpha.test"], "daily_quota": 1000,
                              "rate_per_minute": 60}},
    },
    "archive": {"store": "/srv/mail-archive", "cold_store": "/srv/mail-archive-cold", "cold_after_days": 90,
                "on_failure": "defer",
                "retention": [{"domains": ["broker.example"], "direction": "outbound", "days": 3650}],
                "checkpoint_minutes": 60},
}
# Model fields whose site file key has another name, and text fields that do not come from the site file.
RENAMED = {"name": "site"}
NOT_IN_THE_SITE_FILE = {"path": "where the site file itself is"}
# Sections written as `name: settings` mappings: the model's <section>[0] is the first entry of the mapping, and
# its name field is that entry's key.
NAMED_SECTIONS = ("outbound.carriers", "outbound.channels", "outbound.accounts")
KEY = "<the key>"

INJECTED = {
    "CR": "\r", "LF": "\n", "CRLF": "\r\n", "NUL": "\x00", "TAB": "\t", "double-quote": '"', "single-quote": "'",
    "hash": "#", "semicolon": ";", "dollar": "$", "backslash": "\\", "U+2028": "\u2028",
}
TOO_LONG = "a" * 5000
# The inventory value meant to span lines; each of its lines is checked instead.
MULTI_LINE_VARS = {"mailappliance__mta_sts_policy"}


def text_fields(cls: type, prefix: str = "") -> Iterator[str]:
    """Field paths (mailboxes[0].name) of every str or Path in the dataclass `cls`, nested ones included."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        path = f"{prefix}.{field.name}" if prefix else field.name
        kind = hints[field.name]
        if isinstance(kind, types.UnionType):
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        if typing.get_origin(kind) is tuple:
            kind, path = typing.get_args(kind)[0], f"{path}[0]"
        if dataclasses.is_dataclass(kind):
            yield from text_fields(kind, path)
        elif kind in (str, Path):
            yield path
        elif kind not in (int, float, bool):
            raise AssertionError(f"{path}: {kind} is neither text nor a number; teach this test about it")


def steps(path: str) -> list[str | int]:
    return [int(part) if part.isdigit() else part for part in path.replace("[", ".").replace("]", "").split(".")]


def site_steps(model_path: str) -> list[str | int]:
    """The steps to a model field in the site file; a last step KEY means the key of the entry before it."""
    first, dot, rest = model_path.partition(".")
    path = RENAMED.get(first, first) + dot + rest
    for section in NAMED_SECTIONS:
        if path.startswith(f"{section}[0]"):
            entry = next(iter(walk(POPULATED_SITE, steps(section))))
            field = path.removeprefix(f"{section}[0].")
            return [*steps(section), entry, *([KEY] if field == "name" else steps(field))]
    return steps(path)


def site_path(model_path: str) -> str:
    """Where messages about a model field point: its field path, or for a name the section whose key it is."""
    field_steps = site_steps(model_path)
    path = ""
    for step in field_steps[:-2] if field_steps[-1] is KEY else field_steps:
        path = f"{path}[{step}]" if isinstance(step, int) else f"{path}.{step}".lstrip(".")
    return path


def walk(data: Any, path: list[str | int]) -> Any:
    for step in path:
        data = data[step] if isinstance(step, int) or isinstance(data, dict) else getattr(data, step)
    return data


def get(data: Any, path: str) -> Any:
    return walk(data, steps(path))


def written(field: str) -> str | None:
    """What POPULATED_SITE sets for a model field; None when it has no such key."""
    path = site_steps(field)
    try:
        value = walk(POPULATED_SITE, path[:-1] if path[-1] is KEY else path)
    except (KeyError, IndexError):
        return None
    return path[-2] if path[-1] is KEY else value


def with_value(field: str, value: str) -> dict:
    data = copy.deepcopy(POPULATED_SITE)
    *parents, last = site_steps(field)
    if last is KEY:
        *parents, last = parents
        entries = walk(data, parents)
        renamed = [(value if key == last else key, item) for key, item in entries.items()]
        entries.clear()
        entries.update(renamed)
    else:
        walk(data, parents)[last] = value
    return data


FIELDS = [path for path in text_fields(Site) if path not in NOT_IN_THE_SITE_FILE]


def hostile_values(value: str) -> Iterator[Any]:
    for name, char in INJECTED.items():
        yield pytest.param(value[:1] + char + value[1:], id=f"{name}-middle")
        yield pytest.param(value + char, id=f"{name}-end")
    yield pytest.param(value[:1] + TOO_LONG + value[1:], id="5000-characters")


CASES = [
    pytest.param(field, case.values[0], id=f"{field}-{case.id}")
    for field in FIELDS if written(field) is not None
    for case in hostile_values(written(field))
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("hostile")
    certificates.write_tls(directory)
    (directory / "eicar.hdb").write_text(EICAR_HDB)
    (directory / "overseas.txt").write_text("*.de\n*.fr\n")
    return directory


def load(folder: Path, data: dict) -> Site:
    path = folder / "site.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return load_site(path)


def test_every_text_field_comes_from_the_populated_site_file(folder: Path) -> None:
    site = load(folder, POPULATED_SITE)
    for field in FIELDS:
        value = written(field)
        assert value is not None, (f"{field} of the model has no value at {site_path(field)} in POPULATED_SITE: set "
                                   "it there, or map the field to its site file key in RENAMED")
        loaded = get(site, field)
        expected = {(folder / value).resolve()} if isinstance(loaded, Path) else {value, value.lower()}
        assert loaded in expected, (
            f"{field} of the model is {loaded!r}, not the {value!r} POPULATED_SITE gives at {site_path(field)}: "
            "map the field to its site file key (RENAMED) or set it in POPULATED_SITE")


def unsafe_text(value: Any, where: str = "") -> Iterator[str]:
    """Where `value` (model or inventory data) holds text with a control character or line break."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in MULTI_LINE_VARS:
                for number, line in enumerate(item.split("\n")):
                    yield from unsafe_text(line, f"{where}.{key} line {number + 1}")
            else:
                yield from unsafe_text(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from unsafe_text(item, f"{where}[{index}]")
    elif dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            yield from unsafe_text(getattr(value, field.name), f"{where}.{field.name}")
    elif isinstance(value, (str, Path)) and any(is_unsafe_char(char) for char in str(value)):
        yield f"{where}: {str(value)[:80]!r}"


@pytest.mark.parametrize(("field", "value"), CASES)
def test_hostile_text_is_refused_on_one_line_or_kept_clean(folder: Path, field: str, value: str) -> None:
    path = folder / "site.yml"
    try:
        site = load(folder, with_value(field, value))
    except UserError as error:
        for line in error.lines:
            assert not any(is_unsafe_char(char) for char in line), line
            assert line.startswith(f"{path}: "), line
            assert len(line) < 600, line
        # A name is the key of its entry, so the message's field path goes on with the (escaped) name.
        after = "." if site_steps(field)[-1] is KEY else ": "
        assert any(line.startswith(f"{path}: {site_path(field)}{after}") for line in error.lines), error.lines
        return
    problems = [*unsafe_text(site, "site"), *unsafe_text(hosts_data(site), "hosts"),
                *unsafe_text(site_vars(site), "vars")]
    assert not problems, problems
