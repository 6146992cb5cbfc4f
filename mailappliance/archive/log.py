"""The tamper-evident log: an append-only hash chain in the archive database, with signed checkpoints.

Each entry is (seq, time, kind, object, record, details). Its canonical encoding is the JSON array
["mailappliance-archive-log/1", seq, time, kind, object, record, details] written with sorted keys, no spaces
and ASCII only; entry_hash = SHA-256(prev_hash as 32 bytes || that encoding), hex. The first entry follows 32
zero bytes. A checkpoint is an entry of kind "checkpoint" whose details carry the head it signs (the seq and
hash of the entry just before it) and an Ed25519 signature over the canonical JSON array
["mailappliance-archive-checkpoint/1", head_seq, head_hash, time]. Someone who rewrites the database can
recompute every hash but cannot sign, so a rewrite before a checkpoint shows as a head that no longer matches
its signature. The format is small on purpose: export.py's standalone verifier re-implements it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import db, keys, timefmt

if TYPE_CHECKING:
    from .store import Archive

ENTRY_FORMAT = "mailappliance-archive-log/1"
CHECKPOINT_FORMAT = "mailappliance-archive-checkpoint/1"
GENESIS = "0" * 64
KINDS = ("init", "ingest", "delete", "hold", "release", "retention", "tier", "repack", "checkpoint")


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


@dataclass(frozen=True)
class Entry:
    seq: int
    time: str
    kind: str
    object: str
    record: int | None
    details: dict[str, Any]
    prev_hash: str
    entry_hash: str

    def computed_hash(self, seq: int | None = None) -> str:
        """The hash this entry's content gives after its stored prev_hash (at another seq, if given); "" when
        the stored fields cannot even be hashed (garbage written into the database)."""
        try:
            return entry_hash(self.prev_hash, self.seq if seq is None else seq, self.time, self.kind, self.object,
                              self.record, self.details)
        except (TypeError, ValueError):
            return ""

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": self.time, "kind": self.kind, "object": self.object,
                "record": self.record, "details": self.details, "prev_hash": self.prev_hash,
                "entry_hash": self.entry_hash}


def entry_hash(prev_hash: str, seq: int, time: str, kind: str, obj: str, record: int | None,
               details: dict[str, Any]) -> str:
    encoded = canonical([ENTRY_FORMAT, seq, time, kind, obj, record, details])
    return hashlib.sha256(bytes.fromhex(prev_hash) + encoded).hexdigest()


def checkpoint_payload(head_seq: int, head_hash: str, time: str) -> bytes:
    return canonical([CHECKPOINT_FORMAT, head_seq, head_hash, time])


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    row = conn.execute("SELECT seq, entry_hash FROM log ORDER BY seq DESC LIMIT 1").fetchone()
    return (row["seq"], row["entry_hash"]) if row else (0, GENESIS)


def append(conn: sqlite3.Connection, kind: str, obj: str = "", record: int | None = None,
           details: dict[str, Any] | None = None, moment: datetime | None = None) -> Entry:
    """Add an entry after the current head. Call inside db.transaction(), which holds the write lock."""
    if kind not in KINDS:
        raise ValueError(f"unknown log entry kind {kind!r}")
    details = json.loads(canonical(details or {}))
    prev_seq, prev_hash = head(conn)
    seq = prev_seq + 1
    time = timefmt.format_time(moment or timefmt.now())
    digest = entry_hash(prev_hash, seq, time, kind, obj, record, details)
    conn.execute("INSERT INTO log (seq, time, kind, object, record, details, prev_hash, entry_hash) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 (seq, time, kind, obj, record, canonical(details).decode("ascii"), prev_hash, digest))
    return Entry(seq, time, kind, obj, record, details, prev_hash, digest)


def from_row(row: sqlite3.Row) -> Entry:
    try:
        details = json.loads(row["details"])
    except (TypeError, ValueError):
        details = {"unreadable": str(row["details"])}
    if not isinstance(details, dict):
        details = {"unreadable": str(row["details"])}
    return Entry(row["seq"], row["time"], row["kind"], row["object"], row["record"], details, row["prev_hash"],
                 row["entry_hash"])


def entries(conn: sqlite3.Connection, first: int = 1, last: int | None = None,
            kind: str | None = None) -> Iterator[Entry]:
    query = "SELECT * FROM log WHERE seq >= ?"
    params: list[Any] = [first]
    if last is not None:
        query += " AND seq <= ?"
        params.append(last)
    if kind is not None:
        query += " AND kind = ?"
        params.append(kind)
    for row in conn.execute(query + " ORDER BY seq", params):
        yield from_row(row)


def checkpoint(archive: Archive, signing_key: Ed25519PrivateKey, operator: str) -> Entry:
    """Sign the current head and append the signature as a checkpoint entry."""
    conn = archive.connection()
    with db.transaction(conn):
        head_seq, head_hash = head(conn)
        moment = timefmt.now()
        time = timefmt.format_time(moment)
        signature = signing_key.sign(checkpoint_payload(head_seq, head_hash, time))
        details = {"head_seq": head_seq, "head_hash": head_hash, "key_id": keys.key_id(signing_key.public_key()),
                   "signature": signature.hex(), "operator": operator}
        return append(conn, "checkpoint", head_hash, None, details, moment)
