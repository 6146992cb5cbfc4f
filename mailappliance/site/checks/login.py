"""Checks of login protection: when a source address that keeps guessing passwords is blocked, and which
networks never are."""

from __future__ import annotations

from typing import Any

from mailappliance.site.checks.base import Checker
from mailappliance.site.model import (
    BAN_TIME_RANGE,
    DEFAULT_BAN_TIME,
    DEFAULT_FIND_TIME,
    DEFAULT_MAX_FAILURES,
    FIND_TIME_RANGE,
    MAX_FAILURES_RANGE,
    LoginProtection,
)

_LOGIN_PROTECTION_KEYS = ("max_failures", "find_time", "ban_time", "allow")


def check_login_protection(checker: Checker, top: dict[str, Any]) -> LoginProtection | None:
    raw = top.get("login_protection")
    if raw is None:
        return LoginProtection()
    data = checker.mapping(raw, "login_protection", _LOGIN_PROTECTION_KEYS,
                           "login_protection: {max_failures: 5, find_time: 600, ban_time: 3600, allow: [192.0.2.50]}")
    if data is None:
        return None
    path = "login_protection"
    max_failures = checker.whole_number(data, "max_failures", path, DEFAULT_MAX_FAILURES, MAX_FAILURES_RANGE,
                                        "a whole number of failed logins")
    find_time = checker.whole_number(data, "find_time", path, DEFAULT_FIND_TIME, FIND_TIME_RANGE,
                                     "a whole number of seconds")
    ban_time = checker.whole_number(data, "ban_time", path, DEFAULT_BAN_TIME, BAN_TIME_RANGE,
                                    "a whole number of seconds")
    allow = checker.networks(data.get("allow"), "login_protection.allow",
                             "list the monitoring hosts never to block, e.g. [192.0.2.50, 198.51.100.0/24]")
    if max_failures is None or find_time is None or ban_time is None or allow is None:
        return None
    return LoginProtection(max_failures=max_failures, find_time=find_time, ban_time=ban_time, allow=allow)
