"""Times in the archive: always UTC, always written the same way, so that text order is time order."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone

from .errors import ArchiveError

# Fixed width with microseconds: the log hashes this text and the index compares it as text.
FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> datetime:
    return datetime.now(timezone.utc)


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("archive times must carry a time zone")
    return moment.astimezone(timezone.utc).strftime(FORMAT)


def parse_stored(text: str) -> datetime:
    return datetime.strptime(text, FORMAT).replace(tzinfo=timezone.utc)


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_user_time(text: str, what: str, *, end_of_day: bool = False) -> datetime:
    """A date or time typed by a person: YYYY-MM-DD (the start of that day, or the start of the next day for
    an end bound) or an ISO 8601 time; without a zone it is UTC."""
    value = text.strip()
    try:
        if _DATE.fullmatch(value):
            day = datetime.combine(datetime.strptime(value, "%Y-%m-%d").date(), time(), timezone.utc)
            return day + timedelta(days=1) if end_of_day else day
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ArchiveError(f"{what}: {text!r} is not a date; write YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
