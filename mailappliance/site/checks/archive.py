"""Checks of the archive section: where the compliance archive keeps every message (a hot store and an optional
cold one, folders on the host), what new mail meets when the store cannot take it, how long messages are kept and
how often the log head is signed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mailappliance.site.checks.base import Checker, join
from mailappliance.site.model import (
    ARCHIVE_DIRECTIONS,
    ARCHIVE_ON_FAILURE,
    ARCHIVE_RESERVED_PATHS,
    ARCHIVE_SHARED_FOLDERS,
    CHECKPOINT_MINUTES_RANGE,
    COLD_AFTER_DAYS_RANGE,
    DEFAULT_ARCHIVE_ON_FAILURE,
    DEFAULT_ARCHIVE_STORE,
    DEFAULT_CHECKPOINT_MINUTES,
    DEFAULT_RETENTION_DAYS,
    MAX_RETENTION_DOMAINS,
    MAX_RETENTION_RULES,
    RETENTION_DAYS_RANGE,
    Archive,
    RetentionRule,
)
from mailappliance.site.values import (
    MAX_DOMAIN_LENGTH,
    MAX_PATH_LENGTH,
    is_domain_name,
    is_domain_wildcard,
    show_value,
)

_ARCHIVE_KEYS = ("store", "cold_store", "cold_after_days", "on_failure", "retention", "checkpoint_minutes")
_RULE_KEYS = ("domains", "direction", "days")
# The store paths go into systemd units (ReadWritePaths=, where % and \ are special) and Ansible tasks (where {{ is):
# letters, digits, dots, hyphens and underscores between the slashes need no quoting or escaping in any of them.
_PATH_CHARACTERS = re.compile(r"[A-Za-z0-9._/-]")
_EXAMPLES = {"store": "/srv/mail-archive", "cold_store": "/srv/mail-archive-cold"}
_ON_FAILURE_FIX = ("use defer (new mail gets 4xx while the store cannot take it; the default) or queue (new mail is "
                   "accepted and kept in a local spool until the store takes it; the audit warns)")
_DIRECTION_FIX = ("use inbound (from outside to the site), outbound (from the site to outside), internal (between the "
                  "site's addresses) or local (sent by the host itself); leave direction out for every direction")
_DOMAIN_FIX = ("give a sender or recipient domain (broker.example) or a wildcard for every name below a domain "
               "(*.broker.example, *.de); leave domains out for every domain")
_RULE_EXAMPLE = "- {domains: [broker.example], direction: outbound, days: 3650}"


@dataclass
class _Rule:
    """A retention rule with where it is written and, per domain pattern, where that is."""

    path: str
    rule: RetentionRule
    domain_paths: dict[str, str]


def check_archive(checker: Checker, top: dict[str, Any]) -> Archive | None:
    """The archive section; None when the site has none (nothing is archived) or it is wrong."""
    if "archive" not in top:
        return None
    raw = top["archive"]
    if raw is None:
        checker.error("archive", "is empty", "write archive: {} to archive with every default, or remove the line "
                                             "for no archive")
        return None
    data = checker.mapping(raw, "archive", _ARCHIVE_KEYS,
                           "archive: {store: /srv/mail-archive, retention: [{days: 2557}]}")
    if data is None:
        return None
    store = _folder(checker, data, "store")
    cold_store = _folder(checker, data, "cold_store")
    if store and cold_store:
        _check_tiers(checker, store, cold_store, data.get("store") is not None)
    cold_after_days = _cold_after_days(checker, data)
    on_failure = data.get("on_failure", DEFAULT_ARCHIVE_ON_FAILURE)
    if on_failure not in ARCHIVE_ON_FAILURE:
        checker.error("archive.on_failure", f"{show_value(on_failure)} is not a choice", _ON_FAILURE_FIX)
    retention = _retention(checker, data)
    checkpoint_minutes = checker.whole_number(data, "checkpoint_minutes", "archive", DEFAULT_CHECKPOINT_MINUTES,
                                              CHECKPOINT_MINUTES_RANGE, "a whole number of minutes")
    if checker.errors:
        return None
    assert store is not None and cold_store is not None and cold_after_days is not None
    assert retention is not None and checkpoint_minutes is not None
    return Archive(store=store, cold_store=cold_store, cold_after_days=cold_after_days, on_failure=on_failure,
                   retention=retention, checkpoint_minutes=checkpoint_minutes)


# -- stores ---------------------------------------------------------------------------------------------------

def _folder(checker: Checker, data: dict[str, Any], key: str) -> str | None:
    """An absolute, normalized host path at `key` that is no system folder; the default store, or "" for no cold
    store, when absent."""
    value = data.get(key)
    if value is None:
        return DEFAULT_ARCHIVE_STORE if key == "store" else ""
    where = join("archive", key)
    fix = f"give the absolute path of a folder of its own, e.g. {_EXAMPLES[key]}"
    text = checker.string(value, where, fix, MAX_PATH_LENGTH, "a folder path")
    if text is None:
        return None
    shown = show_value(text)
    if not text.startswith("/"):
        checker.error(where, f"{shown} is not an absolute path", fix)
        return None
    bad = next((char for char in text if not _PATH_CHARACTERS.fullmatch(char)), None)
    if bad is not None:
        what = "a space" if bad == " " else show_value(bad)
        checker.error(where, f"{shown} contains {what}",
                      "use letters, digits, dots, hyphens and underscores between the slashes, e.g. "
                      f"{_EXAMPLES[key]} (the path goes into systemd units and Ansible tasks)")
        return None
    normal = _normalized(text)
    if normal != text:
        checker.error(where, f"{shown} is not in normal form (no . or .. parts, double or trailing slashes)",
                      f"write it as {normal}" if normal != "/" else fix)
        return None
    problem = _reserved(text)
    if problem is not None:
        checker.error(where, f"{shown} {problem}", fix)
        return None
    return text


def _normalized(path: str) -> str:
    """`path` with empty and . parts dropped and each .. taking the part before it (as the kernel would, were no
    part a link)."""
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


def _reserved(path: str) -> str | None:
    """Why `path` cannot hold the archive: it is, is inside or contains a folder of ARCHIVE_RESERVED_PATHS, or is one
    of ARCHIVE_SHARED_FOLDERS; None when it can."""
    if path == "/":
        return "is the root of the file system"
    parts = path.split("/")[1:]
    for reserved, what in ARCHIVE_RESERVED_PATHS.items():
        *parents, last = reserved.rstrip("*").split("/")[1:]
        prefix = reserved.endswith("*")
        depth = len(parents) + 1
        if len(parts) >= depth and parts[:depth - 1] == parents and (
                parts[depth - 1] == last or (prefix and parts[depth - 1].startswith(last))):
            folder = "/" + "/".join(parts[:depth])
            return f"is {what}" if folder == path else f"is inside {folder}, {what}"
        if len(parts) < depth and [*parents, last][:len(parts)] == parts:
            return f"contains {reserved.rstrip('*')}, {what}"
    if path in ARCHIVE_SHARED_FOLDERS:
        return "is a folder other software shares"
    return None


def _check_tiers(checker: Checker, store: str, cold_store: str, store_given: bool) -> None:
    """The two tiers must be separate folders, neither inside the other: messages move from one to the other."""
    where = "archive.cold_store"
    fix = f"give the cold store a folder of its own, e.g. {_EXAMPLES['cold_store']}"
    shown_store = f"archive.store ({show_value(store)}{'' if store_given else ', the default'})"
    if cold_store == store:
        checker.error(where, f"{show_value(cold_store)} is {shown_store} as well", fix)
    elif cold_store.startswith(store + "/"):
        checker.error(where, f"{show_value(cold_store)} is inside {shown_store}", fix)
    elif store.startswith(cold_store + "/"):
        checker.error(where, f"{show_value(cold_store)} contains {shown_store}", fix)


def _cold_after_days(checker: Checker, data: dict[str, Any]) -> int | None:
    """The age at which messages move to the cold store; 0 without one."""
    if data.get("cold_store") is None:
        if data.get("cold_after_days") is not None:
            checker.error("archive.cold_after_days", "is only used with cold_store",
                          "remove it, or set cold_store to the folder old messages move to")
            return None
        return 0
    low, high = COLD_AFTER_DAYS_RANGE
    value, _ = checker.present(data, "cold_after_days", "archive", True,
                               f"give the age in days at which messages move to cold_store, {low} to {high}, e.g. "
                               "cold_after_days: 90")
    if value is None:
        return None
    return checker.whole_number(data, "cold_after_days", "archive", 90, COLD_AFTER_DAYS_RANGE,
                                "a whole number of days")


# -- retention ------------------------------------------------------------------------------------------------

def _retention(checker: Checker, data: dict[str, Any]) -> tuple[RetentionRule, ...] | None:
    """The rules in file order, then the default for every message unless the file ends with a catch-all."""
    default = RetentionRule(days=DEFAULT_RETENTION_DAYS)
    if data.get("retention") is None:
        return (default,)
    items = checker.items(data, "retention", "archive", False,
                          "list rules, e.g. retention: [{domains: [broker.example], days: 3650}, {days: 2557}]")
    if items is None:
        return None
    if len(items) > MAX_RETENTION_RULES:
        checker.error("archive.retention", f"lists {len(items)} rules",
                      f"list at most {MAX_RETENTION_RULES}; put the domains that share a retention into one rule")
        return None
    rules = [rule for index, item in enumerate(items)
             if (rule := _rule(checker, join("archive.retention", index), item)) is not None]
    _check_hidden_rules(checker, rules)
    if len(rules) < len(items):
        return None
    result = tuple(rule.rule for rule in rules)
    return result if result and result[-1].is_catch_all else (*result, default)


def _rule(checker: Checker, path: str, item: Any) -> _Rule | None:
    data = checker.mapping(item, path, _RULE_KEYS, _RULE_EXAMPLE)
    if data is None:
        return None
    domains = _rule_domains(checker, data, path)
    direction = data.get("direction", "")
    if "direction" in data and direction not in ARCHIVE_DIRECTIONS:
        checker.error(join(path, "direction"), f"{show_value(direction)} is not a direction", _DIRECTION_FIX)
        direction = None
    low, high = RETENTION_DAYS_RANGE
    value, _ = checker.present(data, "days", path, True,
                               f"give the days to keep the messages this rule matches, {low} to {high}, e.g. "
                               "days: 3650")
    days = None if value is None else checker.whole_number(data, "days", path, DEFAULT_RETENTION_DAYS,
                                                           RETENTION_DAYS_RANGE, "a whole number of days")
    if domains is None or direction is None or days is None:
        return None
    return _Rule(path=path, rule=RetentionRule(days=days, direction=direction, domains=tuple(domains)),
                 domain_paths=domains)


def _rule_domains(checker: Checker, data: dict[str, Any], path: str) -> dict[str, str] | None:
    """The domain patterns of a rule, lower case, each with its field path; {} when the rule takes every domain."""
    value = data.get("domains")
    where = join(path, "domains")
    if value is None:
        return {}
    if not isinstance(value, list) or not value:
        problem = "the list is empty" if value == [] else f"expected a list of domains, got {show_value(value)}"
        checker.error(where, problem, _DOMAIN_FIX)
        return None
    if len(value) > MAX_RETENTION_DOMAINS:
        checker.error(where, f"lists {len(value)} domains",
                      f"list at most {MAX_RETENTION_DOMAINS}; a wildcard (*.broker.example) takes every name below "
                      "a domain")
        return None
    result: dict[str, str] = {}
    ok = True
    for index, item in enumerate(value):
        item_where = join(where, index)
        text = checker.string(item, item_where, _DOMAIN_FIX, MAX_DOMAIN_LENGTH, "a domain name")
        if text is None:
            ok = False
            continue
        pattern = text.lower()
        if pattern == "*":
            checker.error(item_where, '"*" is every domain', "leave domains out for a rule that takes every domain")
            ok = False
        elif not (is_domain_name(pattern) or is_domain_wildcard(pattern)):
            checker.error(item_where, f"{show_value(text)} is not a domain name or wildcard", _DOMAIN_FIX)
            ok = False
        elif pattern in result:
            checker.error(item_where, f"{show_value(text)} is listed twice in this rule (also at {result[pattern]})",
                          "list each domain once")
            ok = False
        else:
            result[pattern] = item_where
    return result if ok else None


def _check_hidden_rules(checker: Checker, rules: list[_Rule]) -> None:
    """Report every rule, and every domain of a rule, that an earlier rule already takes: the first rule that
    matches a message wins, so it would never apply there. An earlier rule takes what a later one matches when its
    direction is the same or any, and its domains are any or cover the later one's."""
    for index, current in enumerate(rules):
        rule = current.rule
        earlier = [other for other in rules[:index] if other.rule.direction in ("", rule.direction)]
        every_domain = next((other for other in earlier if not other.rule.domains), None)
        if every_domain is not None:
            if every_domain.rule.is_catch_all:
                checker.error(current.path, f"never applies: {every_domain.path} before it has neither domains nor "
                                            "direction, so it takes every message",
                              f"remove this rule, or move it above {every_domain.path} (a rule without domains and "
                              "direction goes last)")
            else:
                checker.error(current.path, f"never applies: {every_domain.path} before it takes every "
                                            f"{every_domain.rule.direction} message",
                              f"remove this rule, or move it above {every_domain.path}")
            continue
        hidden: dict[str, tuple[_Rule, str]] = {}
        for pattern in rule.domains:
            for other in earlier:
                taker = _covering(other.rule.domains, pattern)
                if taker is not None:
                    hidden[pattern] = (other, taker)
                    break
        if not hidden:
            continue
        if len(hidden) == len(rule.domains):
            takers = [other.path for other in earlier if any(cover is other for cover, _ in hidden.values())]
            checker.error(current.path, f"never applies: every message it matches is taken by {', '.join(takers)} "
                                        "before it", f"remove this rule, or move it above {takers[0]}")
            continue
        for pattern, (other, taker) in hidden.items():
            checker.error(current.domain_paths[pattern],
                          f"{show_value(pattern)} is already taken by {show_value(taker)} in {other.path}, so this "
                          "rule never applies to it", f"move this rule above {other.path}, or remove the domain")


def _covering(patterns: tuple[str, ...], pattern: str) -> str | None:
    """The pattern of `patterns` that takes every domain `pattern` stands for: the same one, or a wildcard of a
    parent domain (*.example.de takes names below example.de, not example.de itself)."""
    if pattern in patterns:
        return pattern
    labels = pattern.removeprefix("*.").split(".")
    for start in range(0 if pattern.startswith("*.") else 1, len(labels)):
        wildcard = "*." + ".".join(labels[start:])
        if wildcard in patterns:
            return wildcard
    return None
