"""Tiers: messages older than N days move from the hot store to compressed packs in the cold store (packs.py),
where they stay searchable (the index does not move) and verifiable (verify reads them from the packs).

A move writes the pack durably first, then in one transaction points the messages at it and appends a `tier`
entry whose object is the pack's SHA-256; only then are the hot files removed. A crash in between leaves hot
files of cold messages, which the next run removes. Retention rewrites a pack without the messages it deletes
(a `repack` entry). Tiering and retention take the store's maintenance lock: one run at a time.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from . import db, log, objects, packs, timefmt
from .errors import ArchiveError
from .store import Archive

BATCH = 500


@contextmanager
def maintenance_lock(archive: Archive) -> Iterator[None]:
    path = archive.root / "maintenance.lock"
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArchiveError("another retention or tier run holds the store's maintenance lock; wait for it to "
                               "finish") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class TierResult:
    pack: str
    sha256: str
    members: int
    received_bytes: int
    size: int
    seq: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def tier_plan(archive: Archive, now: datetime, after_days: int) -> dict[str, list[str]]:
    """Hot objects whose every live record is older than after_days, by the day of the newest of them."""
    before = timefmt.format_time(now - timedelta(days=after_days))
    by_day: dict[str, list[str]] = defaultdict(list)
    for row in archive.connection().execute(
            "SELECT o.sha256, MAX(m.received) AS newest FROM objects o JOIN messages m ON m.sha256 = o.sha256 "
            "WHERE o.location = 'hot' AND m.deleted_seq IS NULL GROUP BY o.sha256 HAVING newest < ? "
            "ORDER BY newest", (before,)):
        by_day[row["newest"][:10]].append(row["sha256"])
    return dict(by_day)


def tier_apply(archive: Archive, now: datetime, after_days: int, operator: str) -> tuple[list[TierResult],
                                                                                       list[str]]:
    """Move what tier_plan lists into one new pack per day, each move a `tier` entry; the hot files are
    removed after the commit. Returns the packs written and the hashes left hot because their file no longer
    matches (verify names those)."""
    results: list[TierResult] = []
    damaged: list[str] = []
    if not archive.cold_root.is_dir():
        # Never created here: an unmounted cold disk must not fill the root file system instead.
        raise ArchiveError(f"cold store {archive.cold_root} not found; create it or mount its disk (--cold names "
                           "another)")
    with maintenance_lock(archive):
        for day, hashes in tier_plan(archive, now, after_days).items():
            result = _move_day(archive, day, hashes, after_days, operator, damaged)
            if result:
                results.append(result)
        remove_dead_files(archive)
    return results, damaged


def _move_day(archive: Archive, day: str, hashes: list[str], after_days: int, operator: str,
              damaged: list[str]) -> TierResult | None:
    moved: list[tuple[str, int]] = []

    def readable() -> Iterator[tuple[str, bytes]]:
        # Streamed: a day of mail is never held in memory at once.
        for sha256 in hashes:
            try:
                raw = objects.read(archive.objects_dir, sha256)
            except (OSError, ValueError):
                raw = b""
            if hashlib.sha256(raw).hexdigest() != sha256:
                damaged.append(sha256)
                continue
            moved.append((sha256, len(raw)))
            yield sha256, raw

    pack = packs.write_pack(archive.cold_root, _pack_name(day), readable())
    if not moved:
        (archive.cold_root / pack.name).unlink()
        return None
    received = sum(size for _, size in moved)
    conn = archive.connection()
    with db.transaction(conn):
        entry = log.append(conn, "tier", pack.sha256, None, {
            "pack": pack.name, "members": len(pack.members), "size": pack.size, "received_bytes": received,
            "after_days": after_days, "operator": operator})
        _point_to_pack(conn, pack, entry.seq)
        archive.remember_cold_root(conn)
    # Without the write lock: no ingest turns a cold object hot again, so these files are no one's.
    for sha256, _ in moved:
        objects.remove(archive.objects_dir, sha256)
    return TierResult(pack.name, pack.sha256, len(pack.members), received, pack.size, entry.seq)


def remove_dead_files(archive: Archive) -> None:
    """Remove hot files of objects no longer hot: deleted ones, and ones a crash left behind after tiering."""
    conn = archive.connection()
    stale = [row[0] for row in conn.execute("SELECT sha256 FROM objects WHERE location != 'hot'")
             if objects.path_for(archive.objects_dir, row[0]).exists()]
    for start in range(0, len(stale), BATCH):
        with db.transaction(conn):
            for sha256 in stale[start:start + BATCH]:
                row = conn.execute("SELECT location FROM objects WHERE sha256 = ?", (sha256,)).fetchone()
                if row and row[0] != "hot":
                    objects.remove(archive.objects_dir, sha256)


def repack_dead(archive: Archive, operator: str) -> None:
    """Rewrite each pack holding a message no live record needs any more, without it."""
    conn = archive.connection()
    names = [row[0] for row in conn.execute(
        "SELECT DISTINCT o.pack FROM objects o WHERE o.location = 'cold' AND NOT EXISTS "
        "(SELECT 1 FROM messages m WHERE m.sha256 = o.sha256 AND m.deleted_seq IS NULL)")]
    for name in names:
        rows = conn.execute("SELECT o.*, EXISTS (SELECT 1 FROM messages m WHERE m.sha256 = o.sha256 AND "
                            "m.deleted_seq IS NULL) AS alive FROM objects o WHERE o.pack = ? AND o.location = "
                            "'cold' ORDER BY o.chunk_offset, o.member_offset", (name,)).fetchall()
        keep = [row for row in rows if row["alive"]]
        dead = [row["sha256"] for row in rows if not row["alive"]]
        try:
            new = packs.write_pack(archive.cold_root, _pack_name(Path(name).name[:10]),
                                   _checked_members(archive, name, keep)) if keep else None
        except _Unreadable:
            continue
        with db.transaction(conn):
            old_sha = conn.execute("SELECT sha256 FROM packs WHERE name = ?", (name,)).fetchone()
            entry = log.append(conn, "repack", new.sha256 if new else "", None, {
                "pack": new.name if new else None, "replaces": name, "replaced_sha256": old_sha[0] if old_sha else "",
                "members": len(keep), "removed": len(dead), "operator": operator})
            conn.execute("UPDATE packs SET removed_seq = ? WHERE name = ?", (entry.seq, name))
            if new:
                _point_to_pack(conn, new, entry.seq)
            conn.executemany("UPDATE objects SET location = 'deleted', pack = NULL, chunk_offset = NULL, "
                             "chunk_length = NULL, member_offset = NULL WHERE sha256 = ?", [(s,) for s in dead])
        (archive.cold_root / name).unlink(missing_ok=True)
        objects.fsync_dir((archive.cold_root / name).parent)


class _Unreadable(Exception):
    """A member to keep cannot be read back intact: the pack is left as it is, and verify names it."""


def _checked_members(archive: Archive, name: str, rows: list[sqlite3.Row]) -> Iterator[tuple[str, bytes]]:
    reader = packs.PackReader(archive.cold_root / name)
    for row in rows:
        try:
            raw = reader.member(packs.Member(row["sha256"], row["chunk_offset"], row["chunk_length"],
                                             row["member_offset"], row["size"]))
        except (OSError, ValueError):
            raise _Unreadable(row["sha256"]) from None
        if hashlib.sha256(raw).hexdigest() != row["sha256"]:
            raise _Unreadable(row["sha256"])
        yield row["sha256"], raw


def _pack_name(day: str) -> str:
    return f"{day[:7]}/{day}-{os.urandom(4).hex()}{packs.SUFFIX}"


def _point_to_pack(conn: sqlite3.Connection, pack: packs.PackInfo, seq: int) -> None:
    conn.execute("INSERT INTO packs (name, sha256, size, members, log_seq) VALUES (?, ?, ?, ?, ?)",
                 (pack.name, pack.sha256, pack.size, len(pack.members), seq))
    conn.executemany("UPDATE objects SET location = 'cold', pack = ?, chunk_offset = ?, chunk_length = ?, "
                     "member_offset = ? WHERE sha256 = ?",
                     [(pack.name, m.chunk_offset, m.chunk_length, m.member_offset, m.sha256) for m in pack.members])
