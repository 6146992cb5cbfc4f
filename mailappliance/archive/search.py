"""Search the index: by address, time, subject, words of the text, direction, channel and account.

Every value goes to SQLite as a bound parameter, never into the SQL text. Words for the full-text index are
quoted one by one as FTS5 strings, so a user's text is only ever words to find: `NEAR`, `OR`, `*`, quotes or
column names in it mean nothing special, unless the caller asks for FTS5's own syntax (fts=True).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import parse, timefmt
from .errors import ArchiveError
from .store import RECORD_QUERY, Archive, Record, record_from_row

SENDER_ROLES = ("sender", "from")
RECIPIENT_ROLES = ("rcpt", "to", "cc")


@dataclass
class Criteria:
    """What to look for; every field given must match. An address criterion is a full address or a domain
    (`@acme.example` or `acme.example`); it matches the envelope (Bcc included) or the header fields."""

    sender: str | None = None
    recipient: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    subject: str | None = None
    text: str | None = None
    fts: bool = False
    direction: str | None = None
    channel: str | None = None
    account: str | None = None
    include_deleted: bool = False
    limit: int | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, value in vars(self).items():
            if value is None or value is False:
                continue
            data[name] = timefmt.format_time(value) if isinstance(value, datetime) else value
        return data


def phrases(text: str, what: str) -> str:
    """User text as FTS5 strings joined by AND: each word between double quotes (inner quotes doubled)."""
    # The same cleaning as indexed text: a NUL would end the query string inside FTS5.
    words = [word for word in parse.clean(text, 10_000).split() if re.search(r"\w", word)]
    if not words:
        raise ArchiveError(f"{what}: {text!r} has no word to search for; give at least one letter or digit")
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def _address_condition(value: str, roles: tuple[str, ...], params: list[Any]) -> str:
    value = value.strip().lower()
    if not value:
        raise ArchiveError("an address to search for is empty; give user@domain or @domain")
    marks = ", ".join("?" for _ in roles)
    if "@" in value and not value.startswith("@"):
        params.extend([value, *roles])
        return f"m.id IN (SELECT message FROM addresses WHERE address = ? AND role IN ({marks}))"
    params.extend([value.lstrip("@"), *roles])
    return f"m.id IN (SELECT message FROM addresses WHERE domain = ? AND role IN ({marks}))"


def where(criteria: Criteria) -> tuple[str, list[Any]]:
    conditions: list[str] = []
    params: list[Any] = []
    if not criteria.include_deleted:
        conditions.append("m.deleted_seq IS NULL")
    if criteria.sender:
        conditions.append(_address_condition(criteria.sender, SENDER_ROLES, params))
    if criteria.recipient:
        conditions.append(_address_condition(criteria.recipient, RECIPIENT_ROLES, params))
    if criteria.since:
        conditions.append("m.received >= ?")
        params.append(timefmt.format_time(criteria.since))
    if criteria.until:
        conditions.append("m.received < ?")
        params.append(timefmt.format_time(criteria.until))
    for name in ("direction", "channel", "account"):
        value = getattr(criteria, name)
        if value is not None:
            conditions.append(f"m.{name} = ?")
            params.append(value)
    match = []
    if criteria.text:
        match.append(f"({parse.clean(criteria.text, 10_000)})" if criteria.fts else phrases(criteria.text, "text"))
    if criteria.subject:
        match.append("{subject} : (" + phrases(criteria.subject, "subject") + ")")
    if match:
        conditions.append("m.id IN (SELECT rowid FROM text WHERE text MATCH ?)")
        params.append(" AND ".join(match))
    return (" WHERE " + " AND ".join(conditions)) if conditions else "", params


def search(archive: Archive, criteria: Criteria) -> list[Record]:
    """The matching records, newest first."""
    conn = archive.connection()
    clause, params = where(criteria)
    if criteria.fts and criteria.text:
        # FTS5 parses its query when it runs: try it alone, so a mistake in it is named as such.
        try:
            conn.execute("SELECT rowid FROM text WHERE text MATCH ? LIMIT 1", (params[-1],)).fetchall()
        except sqlite3.OperationalError as error:
            raise ArchiveError(f"--fts: {criteria.text!r} is not a valid FTS5 query ({error}); check the syntax or "
                               "search without --fts") from None
    query = RECORD_QUERY + clause + " ORDER BY m.received DESC, m.id DESC"
    if criteria.limit is not None:
        query += " LIMIT ?"
        params.append(criteria.limit)
    return [record_from_row(row) for row in conn.execute(query, params).fetchall()]
