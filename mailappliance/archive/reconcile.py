"""Reconcile the mail log with the archive: was every message Postfix accepted archived, once?

A message is accepted when its queue id reaches the queue manager: the line
`<instance>/qmgr[pid]: <queue id>: from=<...>, size=N, nrcpt=N (queue active)`. Queue ids are unique only
within one Postfix instance, so everything is keyed by (instance, queue id), the instance being the first part
of the syslog tag (`postfix`, or `postfix-<channel>` for a channel). Lines come as journalctl prints them,
in its default format (local time, no year: the year is the one that puts the line nearest the range) or
with -o short-iso / short-iso-precise.

A message accepted in the range is "missing" when no record has its key, "archived twice" when several records
with different content do (a retried milter call with the same content is one record). A record received in
the range whose key the log never shows accepted is "archived but never accepted" (for example refused after
the archive had it, by a later check or a full queue): evidence of an attempt, not a loss.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import timefmt
from .store import Archive

_SHORT = re.compile(r"(?P<month>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<clock>\d{2}:\d{2}:\d{2}) \S+ "
                    r"(?P<tag>[^\s\[:]+)(?:\[\d+\])?: (?P<text>.*)")
_ISO = re.compile(r"(?P<stamp>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?) \S+ "
                  r"(?P<tag>[^\s\[:]+)(?:\[\d+\])?: (?P<text>.*)")
_QUEUE_ACTIVE = re.compile(r"(?P<id>[0-9A-Za-z]{5,20}): from=<(?P<sender>[^>]*)>, size=(?P<size>\d+), "
                           r"nrcpt=(?P<nrcpt>\d+) \(queue active\)")
_MESSAGE_ID = re.compile(r"(?P<id>[0-9A-Za-z]{5,20}): message-id=(?P<message_id>.*)")
_NOTIFICATION = re.compile(r"[0-9A-Za-z]{5,20}: (?:sender|postmaster) [a-z -]*notification: (?P<id>[0-9A-Za-z]{5,20})")
_CLIENT = re.compile(r"(?P<id>[0-9A-Za-z]{5,20}): client=")
# The staff instance's listener for the channels' mail to hosted domains (role postfix): that mail was journaled
# by the channel that took it, so its second queue id in the staff instance is a hand-over, not a new message.
HANDOVER_SERVICE = "handover"
MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
# Records this much around the range are read for matching: the milter sees a message just before qmgr does.
MARGIN = timedelta(days=1)


@dataclass
class Accepted:
    instance: str
    queue_id: str
    time: str
    sender: str
    size: int
    nrcpt: int
    message_id: str = ""
    note: str = ""


@dataclass
class MailLog:
    accepted: dict[tuple[str, str], Accepted] = field(default_factory=dict)
    ever_accepted: set[tuple[str, str]] = field(default_factory=set)
    lines: int = 0
    unread: int = 0


def _line_time(match: re.Match[str], since: datetime) -> datetime | None:
    if "stamp" in match.groupdict():
        moment = datetime.fromisoformat(match["stamp"].replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.astimezone()
    month = MONTHS.get(match["month"])
    if month is None:
        return None
    options = []
    for year in (since.year - 1, since.year, since.year + 1):
        try:
            options.append(datetime.strptime(f"{year}-{month:02d}-{int(match['day']):02d} {match['clock']}",
                                             "%Y-%m-%d %H:%M:%S").astimezone())
        except ValueError:
            continue
    return min(options, key=lambda moment: abs(moment - since)) if options else None


def read_mail_log(lines: Iterable[str], since: datetime, until: datetime) -> MailLog:
    found = MailLog()
    message_ids: dict[tuple[str, str], str] = {}
    generated: set[tuple[str, str]] = set()
    handed_over: set[tuple[str, str]] = set()
    for line in lines:
        found.lines += 1
        match = _ISO.match(line) or _SHORT.match(line)
        if match is None:
            found.unread += 1
            continue
        tag = match["tag"]
        if not tag.startswith("postfix"):
            continue
        instance, daemon = tag.split("/")[0], tag.split("/")[-1]
        text = match["text"].rstrip("\n")
        if daemon == "cleanup" and (m := _MESSAGE_ID.match(text)):
            message_ids[(instance, m["id"])] = m["message_id"]
        elif daemon == "bounce" and (m := _NOTIFICATION.match(text)):
            generated.add((instance, m["id"]))
        elif daemon == "smtpd" and tag.split("/")[1:2] == [HANDOVER_SERVICE] and (m := _CLIENT.match(text)):
            handed_over.add((instance, m["id"]))
        elif daemon == "qmgr" and (m := _QUEUE_ACTIVE.match(text)):
            key = (instance, m["id"])
            found.ever_accepted.add(key)
            moment = _line_time(match, since)
            # A deferred message comes back to the active queue on each retry: only its first time counts.
            if key in found.accepted or moment is None or not since <= moment < until:
                continue
            found.accepted[key] = Accepted(instance, m["id"], timefmt.format_time(moment), m["sender"],
                                           int(m["size"]), int(m["nrcpt"]))
    for key in handed_over:
        found.accepted.pop(key, None)
    for key, accepted in found.accepted.items():
        accepted.message_id = message_ids.get(key, "")
        if key in generated:
            accepted.note = ("a bounce or notice Postfix generated itself; it reaches milters only when "
                             "internal_mail_filter_classes includes bounce and notify")
    return found


@dataclass
class Reconciliation:
    since: str
    until: str
    accepted: int
    archived: int
    missing: list[dict[str, Any]]
    twice: list[dict[str, Any]]
    never_accepted: list[dict[str, Any]]
    log_lines: int
    unread_lines: int

    @property
    def ok(self) -> bool:
        return not self.missing and not self.twice

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def reconcile(archive: Archive, lines: Iterable[str], since: datetime, until: datetime) -> Reconciliation:
    mail_log = read_mail_log(lines, since, until)
    conn = archive.connection()
    records: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    in_range = []
    for row in conn.execute("SELECT id, instance, queue_id, sha256, received FROM messages WHERE received >= ? "
                            "AND received < ?", (timefmt.format_time(since - MARGIN),
                                                 timefmt.format_time(until + MARGIN))):
        records[(row["instance"], row["queue_id"])].append(dict(row))
        if timefmt.format_time(since) <= row["received"] < timefmt.format_time(until):
            in_range.append(dict(row))
    for key in set(mail_log.accepted) - set(records):
        for row in conn.execute("SELECT id, instance, queue_id, sha256, received FROM messages WHERE instance = ? "
                                "AND queue_id = ? AND queue_id != ''", key):
            records[key].append(dict(row))
    missing, twice, archived = [], [], 0
    for key, accepted in sorted(mail_log.accepted.items()):
        found = records.get(key, [])
        if not found:
            missing.append(asdict(accepted))
            continue
        archived += 1
        if len(found) > 1:
            twice.append({"instance": key[0], "queue_id": key[1], "records": sorted(r["id"] for r in found)})
    never = [{"record": r["id"], "instance": r["instance"], "queue_id": r["queue_id"], "received": r["received"],
              "sha256": r["sha256"]}
             for r in in_range if (r["instance"], r["queue_id"]) not in mail_log.ever_accepted]
    return Reconciliation(timefmt.format_time(since), timefmt.format_time(until), len(mail_log.accepted), archived,
                          missing, twice, never, mail_log.lines, mail_log.unread)
