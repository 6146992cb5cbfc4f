"""Checks of who and where the appliance is: the site name, its hostname, how Ansible reaches it, and the
mail domains it serves."""

from __future__ import annotations

import re
from typing import Any

from mailappliance.site.checks.base import Checker, join
from mailappliance.site.model import CONNECTIONS, DEFAULT_DKIM_SELECTOR, Domain, Host
from mailappliance.site.values import (
    LABEL_RE,
    MAX_DOMAIN_LENGTH,
    MAX_SHORT_TEXT_LENGTH,
    is_container_name,
    is_domain_name,
    is_host_address,
    is_site_name,
    show_value,
)

_USER_RE = re.compile(r"\A[a-z_][a-z0-9_-]{0,31}\Z")


def check_site_name(checker: Checker, top: dict[str, Any]) -> str | None:
    fix = "use 1-63 lowercase letters, digits and hyphens, starting with a letter, e.g. site: example"
    name = checker.text(top, "site", "", True, fix, MAX_SHORT_TEXT_LENGTH)
    if name is not None and not is_site_name(name):
        checker.error("site", f"{show_value(name)} is not a valid site name", fix)
        return None
    return name


def check_hostname(checker: Checker, top: dict[str, Any]) -> str | None:
    fix = "use the appliance's full DNS name, e.g. mail.example.com"
    value = checker.text(top, "hostname", "", True, fix, MAX_DOMAIN_LENGTH)
    if value is None:
        return None
    if not is_domain_name(value.lower()):
        checker.error("hostname", f"{show_value(value)} is not a fully qualified domain name", fix)
        return None
    return value.lower()


def check_host(checker: Checker, top: dict[str, Any], hostname: str | None) -> Host | None:
    raw = top.get("host")
    if raw is None:
        return Host(address=hostname or "")
    data = checker.mapping(raw, "host", ("address", "user", "port", "connection"),
                           "a mapping such as {address: 192.0.2.10, user: root, port: 22}")
    if data is None:
        return None
    ok = True
    connection = data.get("connection", "ssh")
    if connection not in CONNECTIONS:
        checker.error("host.connection", f"{show_value(connection)} is not supported", "use ssh or podman")
        ok = False
    address: str | None = hostname or ""
    if data.get("address") is not None:
        address = checker.text(data, "address", "host", False, "give a DNS name or an IP address", MAX_DOMAIN_LENGTH)
    if address is None:
        ok = False
    elif connection == "podman":
        if not is_container_name(address):
            checker.error("host.address", f"{show_value(address)} is not a valid container name",
                          "use letters, digits, dots, underscores and hyphens")
            ok = False
    elif not is_host_address(address):
        checker.error("host.address", f"{show_value(address)} is not a valid host name or IP address",
                      "use a DNS name, an IPv4 or an IPv6 address")
        ok = False
    user_fix = "use a login name such as root"
    user = checker.string(data.get("user", "root"), "host.user", user_fix, MAX_SHORT_TEXT_LENGTH, "a user name")
    if user is None:
        ok = False
    elif not _USER_RE.fullmatch(user):
        checker.error("host.user", f"{show_value(user)} is not a valid user name", user_fix)
        ok = False
    port = data.get("port", 22)
    if connection == "podman" and "port" in data:
        checker.error("host.port", "is only used with connection ssh", "remove it for a podman container")
        ok = False
    elif isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        checker.error("host.port", f"{show_value(port)} is not a valid port", "use a whole number from 1 to 65535")
        ok = False
    if not ok or address is None or user is None:
        return None
    return Host(address=address, user=user, port=port, connection=connection)


def check_domains(checker: Checker, top: dict[str, Any]) -> list[Domain]:
    fix = "list the mail domains, e.g. domains: [{name: example.com}]"
    items = checker.items(top, "domains", "", True, fix) or []
    result: list[Domain] = []
    first_seen: dict[str, str] = {}
    for index, item in enumerate(items):
        path = join("domains", index)
        data = checker.mapping(item, path, ("name", "dkim_selector"), "- name: example.com")
        if data is None:
            continue
        name_fix = "use letters, digits and hyphens in dot-separated labels"
        value = checker.text(data, "name", path, True, "give the mail domain, e.g. name: example.com",
                             MAX_DOMAIN_LENGTH)
        selector_fix = "use lowercase letters, digits and hyphens (a single DNS label), e.g. mail"
        where = join(path, "dkim_selector")
        selector = checker.string(data.get("dkim_selector", DEFAULT_DKIM_SELECTOR), where, selector_fix,
                                  MAX_SHORT_TEXT_LENGTH, "a DKIM selector")
        if selector is not None and not LABEL_RE.fullmatch(selector):
            checker.error(where, f"{show_value(selector)} is not a valid DKIM selector", selector_fix)
        if selector is None or not LABEL_RE.fullmatch(selector):
            selector = DEFAULT_DKIM_SELECTOR  # keeps the domain declared; the error stops the load anyway
        if value is None:
            continue
        name = value.lower()
        if not is_domain_name(name):
            checker.error(join(path, "name"), f"{show_value(value)} is not a valid domain name", name_fix)
            continue
        if name in first_seen:
            checker.error(join(path, "name"), f"{show_value(value)} is already declared at {first_seen[name]}",
                          "list each domain once")
            continue
        first_seen[name] = path
        result.append(Domain(name=name, dkim_selector=selector))
    return result
