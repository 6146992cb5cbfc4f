"""The archive on one host: open a store folder, ingest messages durably, read them back.

Order of a write, so that a crash at any point loses nothing that was acknowledged and invents nothing:
1. the message file is written and made durable (objects.py); a crash here leaves an unreferenced file,
   which verify reports as such and which a retry of the same message reuses;
2. one SQLite transaction appends the `ingest` log entry and the index rows, and commits (synchronous=FULL);
3. only then does ingest() return, and only then does the milter let Postfix answer 250.
If anything fails, ingest() raises and the milter answers 4xx: the client keeps the message and retries.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import db, log, objects, packs, parse, timefmt
from .errors import ArchiveError

DIRECTIONS = ("inbound", "outbound", "internal", "local")
DB_NAME = "archive.db"
OBJECTS_DIR = "objects"
COLD_DIR = "cold"
ROLES = ("sender", "rcpt", "from", "to", "cc")


@dataclass(frozen=True)
class Envelope:
    """What the MTA knows about a message besides its content. `recipients` is every envelope recipient,
    Bcc included; `instance` is the Postfix instance (postfix, postfix-<channel>), as in its syslog name."""

    queue_id: str
    sender: str
    recipients: Sequence[str]
    direction: str
    channel: str = "staff"
    account: str = ""
    client_address: str = ""
    received: datetime | None = None
    instance: str = "postfix"

    def checked(self) -> Envelope:
        for name in ("queue_id", "sender", "direction", "channel", "account", "client_address", "instance"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"envelope {name} must be text")
        if isinstance(self.recipients, str) or not all(isinstance(r, str) for r in self.recipients):
            raise ValueError("envelope recipients must be a list of addresses")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"envelope direction {self.direction!r} is not one of {', '.join(DIRECTIONS)}")
        if not self.instance:
            raise ValueError("envelope instance is empty")
        if self.received is not None and self.received.tzinfo is None:
            raise ValueError("envelope received time must carry a time zone (UTC)")
        return self


@dataclass(frozen=True)
class Record:
    """One ingest: the index row of a message, with the envelope as its log entry records it."""

    id: int
    sha256: str
    instance: str
    queue_id: str
    sender: str
    recipients: tuple[str, ...]
    direction: str
    channel: str
    account: str
    client_address: str
    received: str
    size: int
    header_from: str
    header_to: str
    header_cc: str
    subject: str
    message_id: str
    date_header: str
    tier: str
    log_seq: int
    deleted_seq: int | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["recipients"] = list(self.recipients)
        data["problems"] = list(self.problems)
        return data

    def label(self) -> str:
        """How reports name the message: "message <sha256> (queue id X, received T)"."""
        queue = f"{self.instance}/{self.queue_id}" if self.queue_id else "no queue id"
        return f"message {self.sha256} (queue id {queue}, received {self.received})"


RECORD_QUERY = """SELECT m.*, COALESCE(o.location, 'deleted') AS tier, l.details AS log_details
FROM messages m LEFT JOIN objects o ON o.sha256 = m.sha256 LEFT JOIN log l ON l.seq = m.log_seq"""


def record_from_row(row: sqlite3.Row) -> Record:
    try:
        recipients = tuple(json.loads(row["log_details"])["recipients"])
    except (TypeError, ValueError, KeyError):
        recipients = ()
    return Record(
        id=row["id"], sha256=row["sha256"], instance=row["instance"], queue_id=row["queue_id"],
        sender=row["sender"], recipients=recipients, direction=row["direction"], channel=row["channel"],
        account=row["account"], client_address=row["client_address"], received=row["received"], size=row["size"],
        header_from=row["header_from"], header_to=row["header_to"], header_cc=row["header_cc"],
        subject=row["subject"], message_id=row["message_id"], date_header=row["date_header"], tier=row["tier"],
        log_seq=row["log_seq"], deleted_seq=row["deleted_seq"], problems=tuple(json.loads(row["problems"])))


class Archive:
    """An archive store: `root` holds archive.db and the hot objects; `cold_root` the packs (default: the
    path remembered from the last tiering, else root/cold). Safe to share between threads (one SQLite
    connection per thread) and between processes (SQLite's locking).

    create=False (what the milter must use): a store that is not there is an error, so an unmounted disk is
    never silently replaced by a fresh archive on the root file system."""

    def __init__(self, root: Path, cold_root: Path | None = None, *, create: bool = False) -> None:
        self.root = Path(root)
        self.objects_dir = self.root / OBJECTS_DIR
        self.db_path = self.root / DB_NAME
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if not self.db_path.is_file():
            if not create:
                if not self.root.is_dir():
                    raise ArchiveError(f"archive store {self.root} not found; check the store path (--store) and "
                                       "that its disk is mounted")
                raise ArchiveError(f"archive store {self.root} holds no archive ({DB_NAME} missing); check that "
                                   "its disk is mounted, or create one with the init verb")
            self._create()
        try:
            conn = self.connection()
            schema = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.DatabaseError as error:
            self.close()
            raise ArchiveError(f"archive database {self.db_path} cannot be read ({error}); restore it from a "
                               "backup and run verify") from None
        if schema is None or schema[0] != db.SCHEMA_VERSION:
            self.close()
            raise ArchiveError(f"archive database {self.db_path}: schema {schema[0] if schema else 'unknown'}, "
                               f"this program reads schema {db.SCHEMA_VERSION}; use the matching version")
        remembered = conn.execute("SELECT value FROM meta WHERE key = 'cold_root'").fetchone()
        self.cold_root = Path(cold_root) if cold_root else Path(remembered[0]) if remembered else self.root / COLD_DIR

    def _create(self) -> None:
        try:
            # Mail is private: nothing of the store for other users (SQLite gives its WAL the file's mode).
            self.root.mkdir(mode=0o750, parents=True, exist_ok=True)
            self.objects_dir.mkdir(mode=0o750, exist_ok=True)
            os.close(os.open(self.db_path, os.O_WRONLY | os.O_CREAT, 0o640))
        except OSError as error:
            raise ArchiveError(f"archive store {self.root}: cannot create it ({error.strerror}); check the "
                               "path and permissions") from None
        conn = self.connection()
        db.create(conn)
        with db.transaction(conn):
            log.append(conn, "init", details={"schema": db.SCHEMA_VERSION})
        objects.fsync_dir(self.root)

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = db.connect(self.db_path)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def remember_cold_root(self, conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO meta (key, value) VALUES ('cold_root', ?) ON CONFLICT (key) DO UPDATE "
                     "SET value = excluded.value", (str(self.cold_root),))

    # Writing.

    def ingest(self, raw: bytes, envelope: Envelope) -> Record:
        """Archive one message; returns only once it is durable (file and log entry), else raises.
        The same (instance, queue id, content) again returns the first record: a retried milter call."""
        envelope = envelope.checked()
        sha256 = hashlib.sha256(raw).hexdigest()
        conn = self.connection()
        existing = self._retry_of(conn, envelope, sha256)
        if existing is not None:
            return existing
        parsed = parse.parse(raw)
        if self._location(conn, sha256) != "cold":
            objects.store(self.objects_dir, sha256, raw)
        with db.transaction(conn):
            existing = self._retry_of(conn, envelope, sha256)
            if existing is not None:
                return existing
            record_id = self._insert(conn, raw, sha256, envelope, parsed)
        return self.record(record_id)

    def ingest_batch(self, items: Iterable[tuple[bytes, Envelope]]) -> list[int]:
        """Archive many messages with one file-system sync and one transaction (imports, generated corpora);
        the same guarantees as ingest() once it returns. The record ids, in order."""
        prepared = []
        conn = self.connection()
        for raw, envelope in items:
            envelope = envelope.checked()
            sha256 = hashlib.sha256(raw).hexdigest()
            if self._location(conn, sha256) != "cold":
                objects.store(self.objects_dir, sha256, raw, sync=False)
            prepared.append((raw, sha256, envelope, parse.parse(raw)))
        os.sync()
        ids = []
        with db.transaction(conn):
            for raw, sha256, envelope, parsed in prepared:
                existing = self._retry_of(conn, envelope, sha256)
                ids.append(existing.id if existing else self._insert(conn, raw, sha256, envelope, parsed))
        return ids

    def _retry_of(self, conn: sqlite3.Connection, envelope: Envelope, sha256: str) -> Record | None:
        if not envelope.queue_id:
            return None
        row = conn.execute(RECORD_QUERY + " WHERE m.instance = ? AND m.queue_id = ? AND m.sha256 = ?",
                           (envelope.instance, envelope.queue_id, sha256)).fetchone()
        return record_from_row(row) if row else None

    @staticmethod
    def _location(conn: sqlite3.Connection, sha256: str) -> str | None:
        row = conn.execute("SELECT location FROM objects WHERE sha256 = ?", (sha256,)).fetchone()
        return row[0] if row else None

    def _insert(self, conn: sqlite3.Connection, raw: bytes, sha256: str, envelope: Envelope,
                parsed: parse.Parsed) -> int:
        """The object row, index rows and log entry of one message; inside the caller's transaction."""
        location = self._location(conn, sha256)
        if location in (None, "hot", "deleted"):
            # Under the write lock, where retention removes a hot file only after checking again that its
            # object is still deleted; tiering removes one only once its object is cold. So the file seen here
            # stays. (A hot file found missing is written again: same hash, same content.)
            stored = objects.store(self.objects_dir, sha256, raw)
            conn.execute("INSERT INTO objects (sha256, size, stored_size, location) VALUES (?, ?, ?, 'hot') "
                         "ON CONFLICT (sha256) DO UPDATE SET location = 'hot', stored_size = excluded.stored_size, "
                         "pack = NULL, chunk_offset = NULL, chunk_length = NULL, member_offset = NULL",
                         (sha256, len(raw), stored))
        received = timefmt.format_time(envelope.received or timefmt.now())
        clean = parse.clean
        # The write lock is held: the ingest entry will be the one after the current head.
        next_seq = log.head(conn)[0] + 1
        cursor = conn.execute(
            "INSERT INTO messages (sha256, instance, queue_id, sender, direction, channel, account, client_address, "
            "received, size, header_from, header_to, header_cc, subject, message_id, date_header, problems, log_seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sha256, clean(envelope.instance), clean(envelope.queue_id), clean(envelope.sender),
             envelope.direction, clean(envelope.channel), clean(envelope.account), clean(envelope.client_address),
             received, len(raw), parsed.header_from, parsed.header_to, parsed.header_cc, parsed.subject,
             parsed.message_id, parsed.date_header, json.dumps(parsed.problems), next_seq))
        record_id = cursor.lastrowid
        assert record_id is not None
        entry = log.append(conn, "ingest", sha256, record_id, ingest_details(envelope, received, len(raw)))
        if entry.seq != next_seq:
            raise RuntimeError(f"log head moved inside a write transaction ({entry.seq} != {next_seq})")
        rows = {("sender", clean(envelope.sender.lower(), 320))}
        rows.update(("rcpt", clean(r.lower(), 320)) for r in envelope.recipients)
        for role in ("from", "to", "cc"):
            rows.update((role, address) for address in parsed.addresses[role])
        conn.executemany("INSERT INTO addresses (message, role, address, domain) VALUES (?, ?, ?, ?)",
                         [(record_id, role, address, parse.envelope_domain(address))
                          for role, address in sorted(rows) if address])
        conn.execute("INSERT INTO text (rowid, subject, headers, body, attachments) VALUES (?, ?, ?, ?, ?)",
                     (record_id, parsed.subject, parsed.headers, parsed.body, parsed.attachments))
        return record_id

    # Reading.

    def record(self, record_id: int) -> Record:
        row = self.connection().execute(RECORD_QUERY + " WHERE m.id = ?", (record_id,)).fetchone()
        if row is None:
            raise ArchiveError(f"record {record_id} not found; search for it first")
        return record_from_row(row)

    def records(self, record_ids: Iterable[int]) -> list[Record]:
        return [self.record(record_id) for record_id in record_ids]

    def read_message(self, sha256: str) -> bytes:
        """The message's bytes from the hot store or its cold pack (not checked against its hash here)."""
        row = self.connection().execute("SELECT * FROM objects WHERE sha256 = ?", (sha256,)).fetchone()
        if row is None or row["location"] == "deleted":
            raise ArchiveError(f"message {sha256} is not stored (deleted or never archived)")
        if row["location"] == "hot":
            return objects.read(self.objects_dir, sha256)
        # The last chunk read is kept: reading several messages of one day (export, retention) reads it once.
        key = (row["pack"], row["chunk_offset"], row["chunk_length"])
        cached = getattr(self._local, "chunk", None)
        if cached is None or cached[0] != key:
            cached = (key, packs.read_chunk(self.cold_root / row["pack"], row["chunk_offset"], row["chunk_length"]))
            self._local.chunk = cached
        return cached[1][row["member_offset"]:row["member_offset"] + row["size"]]


def stats(archive: Archive) -> dict[str, Any]:
    """Counts and sizes: records, bytes received and stored (hot files, live packs, the database), free space."""
    conn = archive.connection()

    def one(query: str) -> int:
        return conn.execute(query).fetchone()[0] or 0

    data: dict[str, Any] = {
        "records": one("SELECT COUNT(*) FROM messages"),
        "records_deleted": one("SELECT COUNT(*) FROM messages WHERE deleted_seq IS NOT NULL"),
        "bytes_received": one("SELECT SUM(size) FROM messages WHERE deleted_seq IS NULL"),
        "objects_hot": one("SELECT COUNT(*) FROM objects WHERE location = 'hot'"),
        "objects_cold": one("SELECT COUNT(*) FROM objects WHERE location = 'cold'"),
        "bytes_hot": one("SELECT SUM(stored_size) FROM objects WHERE location = 'hot'"),
        "packs": one("SELECT COUNT(*) FROM packs WHERE removed_seq IS NULL"),
        "bytes_cold": one("SELECT SUM(size) FROM packs WHERE removed_seq IS NULL"),
        "bytes_database": sum(path.stat().st_size for path in archive.root.glob(DB_NAME + "*")),
        "log_entries": one("SELECT MAX(seq) FROM log"),
    }
    data["bytes_stored"] = data["bytes_hot"] + data["bytes_cold"]
    data["stored_per_received"] = round(data["bytes_stored"] / data["bytes_received"], 4) if data["bytes_received"] \
        else None
    last = conn.execute("SELECT seq, time, entry_hash FROM log WHERE kind = 'checkpoint' ORDER BY seq DESC "
                        "LIMIT 1").fetchone()
    # Its hash, kept anywhere off the host (the audit report prints it), is an anchor for verify --anchor.
    data["last_checkpoint"] = {"seq": last["seq"], "time": last["time"], "hash": last["entry_hash"]} if last else None
    data["entries_since_checkpoint"] = data["log_entries"] - (last["seq"] if last else 0)
    for name, path in (("store", archive.root), ("cold", archive.cold_root)):
        try:
            usage = shutil.disk_usage(path)
        except OSError:
            continue
        data[f"free_bytes_{name}"] = usage.free
    return data


def ingest_details(envelope: Envelope, received: str, size: int) -> dict[str, Any]:
    """The envelope as the ingest log entry records it: exactly as received, the evidence."""
    return {"instance": envelope.instance, "queue_id": envelope.queue_id, "sender": envelope.sender,
            "recipients": list(envelope.recipients), "direction": envelope.direction, "channel": envelope.channel,
            "account": envelope.account, "client_address": envelope.client_address, "received": received,
            "size": size}
