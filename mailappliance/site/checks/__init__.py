"""The checks of a site file, one module per section; `check_site` runs them in an order where each section
can rely on those it refers to (domains before mailboxes, mailboxes before aliases, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailappliance.site.checks.addresses import check_admin_contact, check_alias_loops, check_aliases, check_mailboxes
from mailappliance.site.checks.archive import check_archive
from mailappliance.site.checks.base import Checker
from mailappliance.site.checks.dns import check_dns
from mailappliance.site.checks.identity import check_domains, check_host, check_hostname, check_site_name
from mailappliance.site.checks.login import check_login_protection
from mailappliance.site.checks.outbound import check_outbound
from mailappliance.site.checks.scanning import check_antivirus, check_spam
from mailappliance.site.checks.tls import check_tls
from mailappliance.site.model import DEFAULT_MESSAGE_SIZE_LIMIT, MESSAGE_SIZE_LIMIT_RANGE, Site

__all__ = ["Checker", "check_site"]

TOP_KEYS = ("site", "hostname", "admin_contact", "host", "domains", "mailboxes", "aliases",
            "message_size_limit", "tls", "spam", "antivirus", "dns", "login_protection", "trusted_relays", "outbound",
            "archive")


def check_site(checker: Checker, data: Any, site_path: Path) -> Site | None:
    """The Site of a file's data (at `site_path`), or None when `checker` has recorded a problem."""
    if data is None:
        checker.error("", "the file is empty", "write a site definition, e.g. with `mailappliance site new`")
        return None
    top = checker.mapping(data, "", TOP_KEYS, '"key: value" lines (site:, hostname:, domains:, ...)')
    if top is None:
        return None
    name = check_site_name(checker, top)
    hostname = check_hostname(checker, top)
    domains = check_domains(checker, top)
    domain_names = [d.name for d in domains]
    mailboxes = check_mailboxes(checker, top, domain_names)
    aliases, alias_entries = check_aliases(checker, top, domain_names, mailboxes)
    admin_contact = check_admin_contact(checker, top, domain_names, mailboxes, aliases)
    check_alias_loops(checker, alias_entries, domain_names, mailboxes, admin_contact)
    host = check_host(checker, top, hostname)
    size_limit = checker.size(top, "message_size_limit", "", DEFAULT_MESSAGE_SIZE_LIMIT, MESSAGE_SIZE_LIMIT_RANGE)
    tls = check_tls(checker, top, hostname, domain_names)
    spam = check_spam(checker, top)
    antivirus = check_antivirus(checker, top)
    dns = check_dns(checker, top, host, admin_contact, domain_names, mailboxes, aliases)
    login_protection = check_login_protection(checker, top)
    trusted_relays = checker.networks(top.get("trusted_relays"), "trusted_relays",
                                      "list the gateways that relay mail for the hosted domains, e.g. [192.0.2.25]")
    outbound = check_outbound(checker, top, hostname, host, domains, dns)
    archive = check_archive(checker, top)
    # Every rejected value has recorded an error, so a clean run has all parts.
    if checker.errors:
        return None
    assert name and hostname and admin_contact and host and size_limit and tls and spam and antivirus and dns
    assert login_protection is not None and trusted_relays is not None
    return Site(
        path=site_path, name=name, hostname=hostname, admin_contact=admin_contact, host=host,
        domains=tuple(domains), mailboxes=tuple(mailboxes), aliases=tuple(aliases),
        message_size_limit=size_limit[0], message_size_limit_bytes=size_limit[1],
        tls=tls, spam=spam, antivirus=antivirus, dns=dns, login_protection=login_protection,
        trusted_relays=trusted_relays, outbound=outbound, archive=archive,
    )
