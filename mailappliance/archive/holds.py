"""Legal holds: a case id, addresses and a date range whose messages retention must not delete until released.

A hold covers every message received in its date range (inclusive, UTC days; either end open) with any of its
addresses as envelope sender or recipient or in From/To/Cc: `user@domain` exactly, `@domain` for the whole
domain, no address for every message. Holds live only in the log (`hold` and `release` entries), so none can
be removed without breaking the chain.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any

from . import db, log
from .errors import ArchiveError
from .store import Archive

_CASE_ID = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


@dataclass(frozen=True)
class Hold:
    case_id: str
    addresses: tuple[str, ...]
    date_from: str | None
    date_to: str | None
    reason: str
    operator: str
    seq: int
    time: str
    released_seq: int | None = None

    def covers(self, received: str, addresses: set[str]) -> bool:
        day = received[:10]
        if (self.date_from and day < self.date_from) or (self.date_to and day > self.date_to):
            return False
        if not self.addresses:
            return True
        domains = {address.rpartition("@")[2] for address in addresses}
        return any(pattern[1:] in domains if pattern.startswith("@") else pattern in addresses
                   for pattern in self.addresses)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["addresses"] = list(self.addresses)
        return data


def holds(archive: Archive, include_released: bool = False) -> list[Hold]:
    """The holds as the log records them, oldest first."""
    return holds_in(archive.connection(), include_released)


def holds_in(conn: sqlite3.Connection, include_released: bool = False) -> list[Hold]:
    """Replays the hold and release entries in order: a release ends the case's hold placed before it."""
    active: dict[str, Hold] = {}
    released: list[Hold] = []
    for row in conn.execute("SELECT * FROM log WHERE kind IN ('hold', 'release') ORDER BY seq"):
        entry = log.from_row(row)
        details = entry.details
        case_id = str(details.get("case_id"))
        if entry.kind == "hold":
            active[case_id] = Hold(case_id, tuple(details.get("addresses") or ()), details.get("date_from"),
                                   details.get("date_to"), str(details.get("reason", "")),
                                   str(details.get("operator", "")), entry.seq, entry.time)
        elif case_id in active:
            released.append(replace(active.pop(case_id), released_seq=entry.seq))
    found = list(active.values()) + (released if include_released else [])
    return sorted(found, key=lambda held: held.seq)


def hold(archive: Archive, case_id: str, addresses: Sequence[str], date_from: date | None, date_to: date | None,
         reason: str, operator: str) -> Hold:
    if not _CASE_ID.fullmatch(case_id):
        raise ArchiveError(f"hold: case id {case_id!r} must be 1 to 200 characters without control characters")
    if not reason.strip():
        raise ArchiveError("hold: give a reason (--reason); it is kept in the log as evidence")
    patterns = []
    for address in addresses:
        value = address.strip().lower()
        if not re.fullmatch(r"[^\s@]*@[^\s@]+", value):
            raise ArchiveError(f"hold: {address!r} is not an address; write user@domain or @domain")
        patterns.append(value)
    if date_from and date_to and date_from > date_to:
        raise ArchiveError(f"hold: the range starts ({date_from}) after it ends ({date_to}); swap them")
    details = {"case_id": case_id, "addresses": patterns, "date_from": date_from.isoformat() if date_from else None,
               "date_to": date_to.isoformat() if date_to else None, "reason": reason, "operator": operator}
    conn = archive.connection()
    with db.transaction(conn):
        if any(h.case_id == case_id for h in holds_in(conn)):
            raise ArchiveError(f"hold: case {case_id!r} is already held; release it first or use another case id")
        entry = log.append(conn, "hold", details=details)
    return Hold(case_id, tuple(patterns), details["date_from"], details["date_to"], reason, operator, entry.seq,
                entry.time)


def release(archive: Archive, case_id: str, operator: str, reason: str = "") -> log.Entry:
    conn = archive.connection()
    with db.transaction(conn):
        if not any(h.case_id == case_id for h in holds_in(conn)):
            raise ArchiveError(f"release: no active hold for case {case_id!r}; list them with the holds verb")
        return log.append(conn, "release", details={"case_id": case_id, "operator": operator, "reason": reason})
