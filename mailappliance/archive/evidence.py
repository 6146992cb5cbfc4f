"""What `mailappliance audit` reads of the archive on the host, in one JSON document (the `audit` verb).

Read-only: verify, reconcile, the holds, the retention plan and the counts, as the CLI verbs compute them, plus
the store's free space and the milter's spool. Lists are cut to LIST_LIMIT items (the counts stay whole), so a
badly damaged store still gives a report of bounded size; the CLI verbs list everything. No message content and
no sender or recipient address leaves the host: records are named by id, hash and queue id, holds by case id
with the number of addresses they cover.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from . import keys, retention, timefmt
from .holds import holds
from .reconcile import reconcile
from .store import Archive, stats
from .verify import verify

LIST_LIMIT = 20


def _cut(items: list[Any]) -> list[Any]:
    return items[:LIST_LIMIT]


def _disk(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        usage = shutil.disk_usage(path)
    except OSError as error:
        return {"path": str(path), "error": f"{error.strerror or error}"}
    return {"path": str(path), "total": usage.total, "free": usage.free}


def _spool(path: Path | None) -> dict[str, Any] | None:
    """Messages accepted but not yet archived (on_failure: queue): one .json per message once complete."""
    if path is None:
        return None
    try:
        waiting = sorted(entry for entry in os.listdir(path) if entry.endswith(".json"))
    except FileNotFoundError:
        waiting = []
    except OSError as error:
        return {"path": str(path), "error": f"{error.strerror or error}"}
    oldest = min((os.stat(path / name).st_mtime for name in waiting), default=None)
    return {"path": str(path), "messages": len(waiting), "oldest_mtime": oldest}


def gather(archive: Archive, *, public_key: Path, policy_file: Path | None, spool: Path | None,
           on_failure: str, mail_log: Iterable[str], since: datetime, until: datetime,
           now: datetime | None = None, anchors: Sequence[tuple[int, str]] = ()) -> dict[str, Any]:
    """Every part is computed on its own: one that fails is reported under its name with the error, and the
    others still are."""
    now = now or timefmt.now()
    data: dict[str, Any] = {"time": timefmt.format_time(now), "on_failure": on_failure,
                            "store": _disk(archive.root),
                            # The default cold folder is in the store: its space is the store's.
                            "cold": None if archive.cold_root.is_relative_to(archive.root) else _disk(archive.cold_root),
                            "spool": _spool(spool)}

    def part(name: str, compute: Any) -> None:
        try:
            data[name] = compute()
        except Exception as error:  # noqa: BLE001 - any failure is evidence for the control that reads the part
            data[name] = {"error": f"{type(error).__name__}: {error}"[:300]}

    part("stats", lambda: stats(archive))

    def integrity() -> dict[str, Any]:
        report = verify(archive, keys.load_public_key(public_key), anchors)
        return {"ok": report.ok, "counts": report.counts, "problem_count": len(report.problems),
                "problems": _cut([p.text for p in report.problems]), "notes": _cut(report.notes)}

    part("verify", integrity)

    def coverage() -> dict[str, Any]:
        result = reconcile(archive, mail_log, since, until).as_dict()
        return {**{key: result[key] for key in ("since", "until", "accepted", "archived", "ok", "log_lines",
                                                "unread_lines")},
                "missing_count": len(result["missing"]), "twice_count": len(result["twice"]),
                "never_accepted_count": len(result["never_accepted"]),
                "missing": _cut([{k: m[k] for k in ("instance", "queue_id", "time", "size", "note")}
                                 for m in result["missing"]]),
                "twice": _cut(result["twice"])}

    part("reconcile", coverage)
    part("holds", lambda: [{"case_id": h.case_id, "addresses": len(h.addresses), "date_from": h.date_from,
                            "date_to": h.date_to, "reason": h.reason[:200], "operator": h.operator,
                            "time": h.time} for h in holds(archive)])

    def due() -> dict[str, Any]:
        loaded = retention.Policy.load(policy_file) if policy_file else retention.Policy()
        items = retention.retention_plan(archive, now, loaded)
        return {"policy": loaded.as_dict(), "file": str(policy_file or ""), "due": len(items),
                "oldest_expiry": min((item.expired for item in items), default=None)}

    part("retention", due)
    return data


def window(hours: float, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The reconcile range: the last `hours` up to a minute ago, so a message being accepted right now (the
    archive has it, the log line is still to come) is not judged half-way."""
    end = (now or timefmt.now()) - timedelta(minutes=1)
    return end - timedelta(hours=hours), end
