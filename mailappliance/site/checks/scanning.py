"""Checks of mail scanning: the spam thresholds and the antivirus signature sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailappliance.site.checks.base import Checker, join
from mailappliance.site.model import (
    CLAMAV_DATABASE_EXTENSIONS,
    DEFAULT_SPAM_ADD_HEADER,
    DEFAULT_SPAM_REJECT,
    Antivirus,
    Spam,
)
from mailappliance.site.values import MAX_URL_LENGTH, is_mirror_url, show_value


def check_spam(checker: Checker, top: dict[str, Any]) -> Spam | None:
    raw = top.get("spam")
    if raw is None:
        return Spam()
    data = checker.mapping(raw, "spam", ("add_header", "reject", "network_checks"),
                           "spam: {add_header: 6, reject: 15, network_checks: true}")
    if data is None:
        return None
    add_header = checker.score(data, "add_header", "spam", DEFAULT_SPAM_ADD_HEADER)
    reject = checker.score(data, "reject", "spam", DEFAULT_SPAM_REJECT)
    if add_header is None or reject is None:
        return None
    if reject <= add_header:
        checker.error("spam.reject", f"{reject:g} must be greater than spam.add_header ({add_header:g})",
                      "raise reject or lower add_header")
        return None
    network_checks = data.get("network_checks", True)
    if not isinstance(network_checks, bool):
        checker.error("spam.network_checks", f"{show_value(network_checks)} is not true or false",
                      "use true (query DNS blocklists and Rspamd's public services) or false (air-gapped)")
        return None
    return Spam(add_header=add_header, reject=reject, network_checks=network_checks)


def check_antivirus(checker: Checker, top: dict[str, Any]) -> Antivirus | None:
    raw = top.get("antivirus")
    # The appliance never downloads public signatures, and clamd without any refuses to start.
    no_source = ("no virus signature source", "set antivirus.mirror_url (a private freshclam mirror) or "
                 "antivirus.local_databases (database files copied to the appliance)")
    if raw is None:
        checker.error("antivirus", *no_source)
        return None
    data = checker.mapping(raw, "antivirus", ("mirror_url", "local_databases"),
                           "antivirus: {mirror_url: http://mirror.example/, local_databases: [local.hdb]}")
    if data is None:
        return None
    ok = True
    mirror_url = ""
    raw_url = data.get("mirror_url")
    if raw_url is not None:
        url_fix = ("use http:// or https://, a host name or IP address, an optional :port and a path of "
                   "letters, digits and - . _ ~ % / + = , : @, e.g. http://clamav-mirror.internal/")
        url = checker.string(raw_url, "antivirus.mirror_url", url_fix, MAX_URL_LENGTH, "a URL")
        if url is not None and not is_mirror_url(url):
            checker.error("antivirus.mirror_url", f"{show_value(raw_url)} is not an http(s) URL", url_fix)
        if url is None or not is_mirror_url(url):
            ok = False
        else:
            mirror_url = url
    databases: list[Path] = []
    names: dict[str, str] = {}
    fix = "list ClamAV database files relative to the site file's folder, e.g. [local.hdb]"
    for index, value in enumerate(checker.items(data, "local_databases", "antivirus", False, fix) or []):
        where = join("antivirus.local_databases", index)
        file = checker.local_file(value, where, fix)
        if file is None:
            ok = False
            continue
        if file.suffix.lower() not in CLAMAV_DATABASE_EXTENSIONS:
            checker.error(where, f"{show_value(value)} does not have a ClamAV database extension",
                          f"use one of {' '.join(CLAMAV_DATABASE_EXTENSIONS)}")
            ok = False
            continue
        if file.name in names:
            checker.error(where, f"{show_value(value)} has the same file name as {names[file.name]}",
                          "rename one of them (all are copied into one folder on the appliance)")
            ok = False
            continue
        names[file.name] = where
        databases.append(file)
    if ok and not mirror_url and not databases:
        checker.error("antivirus", *no_source)
        ok = False
    return Antivirus(mirror_url=mirror_url, local_databases=tuple(databases)) if ok else None
