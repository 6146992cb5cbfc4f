"""The mail log stays free of warnings and errors while the suite runs. Named to sort last, so it
sees everything the other tests caused; lines a test provokes on purpose are excused only inside
that test's time window and only when they match what the test declared (see LogAllowances)."""

from __future__ import annotations

import datetime
import json
import re

PROBLEM = re.compile(r"\b(warning|error|fatal|panic):", re.IGNORECASE)
MAIL_LOG = "/var/log/mail.log"
ISO_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))\s")
BSD_STAMP = re.compile(r"^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)\s")


def journal_lines(host, since: float) -> list[tuple[float, str]]:
    out = host.run("journalctl -u postfix@- --since @%s -o json --no-pager", str(int(since)))
    assert out.rc == 0, f"journalctl failed: {out.stderr}"
    lines = []
    for raw in out.stdout.splitlines():
        if not raw.strip():
            continue
        entry = json.loads(raw)
        message = entry.get("MESSAGE", "")
        if isinstance(message, list):  # journald's encoding of non-UTF-8 messages
            message = bytes(message).decode("utf-8", "replace")
        lines.append((int(entry["__REALTIME_TIMESTAMP"]) / 1e6, f"{entry.get('SYSLOG_IDENTIFIER', '?')}: {message}"))
    return lines


def mail_log_lines(host) -> list[tuple[float, str]]:
    if not host.file(MAIL_LOG).exists:
        return []
    offset = host.run("date +%z").stdout.strip()
    zone = datetime.datetime.strptime(offset, "%z").tzinfo
    year = datetime.datetime.now(zone).year
    lines = []
    for line in host.file(MAIL_LOG).content_string.splitlines():
        if iso := ISO_STAMP.match(line):
            stamp = datetime.datetime.fromisoformat(iso.group(1))
        elif bsd := BSD_STAMP.match(line):
            stamp = datetime.datetime.strptime(f"{year} {bsd.group(1)}", "%Y %b %d %H:%M:%S").replace(tzinfo=zone)
        else:
            raise AssertionError(f"unrecognised time stamp in {MAIL_LOG}: {line!r}")
        lines.append((stamp.timestamp(), line))
    return lines


def test_mail_log_has_no_warnings_or_errors_since_the_session_started(host, session_start, log_allowances):
    lines = journal_lines(host, session_start) + mail_log_lines(host)
    problems = [
        line
        for when, line in lines
        if when >= session_start and PROBLEM.search(line) and not log_allowances.excuse(when, line)
    ]
    assert not problems, "mail log problems since the tests started:\n" + "\n".join(problems)
