"""The archive database: the log, the index and the places of stored objects, in one SQLite file.

One file on purpose: a message's log entry and its index row are written in one transaction, so the two
cannot disagree after a crash. WAL with synchronous=FULL: a commit is on disk when it returns (this is
evidence, and the milter answers 250 only after it), while readers (search, verify) never block the writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

-- The tamper-evident log. entry_hash = SHA-256(prev_hash || canonical entry); see log.py.
CREATE TABLE log (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    object TEXT NOT NULL,
    record INTEGER,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    entry_hash TEXT NOT NULL
);
CREATE INDEX log_kind ON log (kind, seq);
CREATE INDEX log_record ON log (record);
CREATE TRIGGER log_refuses_update BEFORE UPDATE ON log
BEGIN SELECT RAISE(ABORT, 'the archive log is append-only'); END;
CREATE TRIGGER log_refuses_delete BEFORE DELETE ON log
BEGIN SELECT RAISE(ABORT, 'the archive log is append-only'); END;

-- One row per distinct content. location: hot (a file in objects/), cold (a member of a pack) or deleted.
CREATE TABLE objects (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    stored_size INTEGER NOT NULL,
    location TEXT NOT NULL CHECK (location IN ('hot', 'cold', 'deleted')),
    pack TEXT,
    chunk_offset INTEGER,
    chunk_length INTEGER,
    member_offset INTEGER
) WITHOUT ROWID;
CREATE INDEX objects_pack ON objects (pack) WHERE pack IS NOT NULL;

-- One row per ingest (a record); several records may share one object.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256 TEXT NOT NULL,
    instance TEXT NOT NULL,
    queue_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    direction TEXT NOT NULL,
    channel TEXT NOT NULL,
    account TEXT NOT NULL,
    client_address TEXT NOT NULL,
    received TEXT NOT NULL,
    size INTEGER NOT NULL,
    header_from TEXT NOT NULL,
    header_to TEXT NOT NULL,
    header_cc TEXT NOT NULL,
    subject TEXT NOT NULL,
    message_id TEXT NOT NULL,
    date_header TEXT NOT NULL,
    problems TEXT NOT NULL,
    log_seq INTEGER NOT NULL,
    deleted_seq INTEGER
);
-- A retried milter call (same instance, queue id and content) finds its first record here.
CREATE UNIQUE INDEX messages_retry ON messages (instance, queue_id, sha256) WHERE queue_id != '';
CREATE INDEX messages_received ON messages (received);
CREATE INDEX messages_sha256 ON messages (sha256);

-- Every address of a record, by role: sender and rcpt (the envelope, Bcc included), from, to, cc (headers).
CREATE TABLE addresses (
    message INTEGER NOT NULL,
    role TEXT NOT NULL,
    address TEXT NOT NULL,
    domain TEXT NOT NULL
);
CREATE INDEX addresses_address ON addresses (address, role);
CREATE INDEX addresses_domain ON addresses (domain, role);
CREATE INDEX addresses_message ON addresses (message);

-- Cold packs: name relative to the cold root; removed_seq set when a repack replaced it.
CREATE TABLE packs (
    name TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    members INTEGER NOT NULL,
    log_seq INTEGER NOT NULL,
    removed_seq INTEGER
) WITHOUT ROWID;

-- Full text, contentless: the words are indexed, the text itself is only in the stored message.
CREATE VIRTUAL TABLE text USING fts5 (
    subject, headers, body, attachments, content='', tokenize='unicode61 remove_diacritics 2'
);
"""


def connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE (see transaction()).
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def create(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        for statement in _statements(SCHEMA):
            conn.execute(statement)
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))


def _statements(script: str) -> Iterator[str]:
    """The statements of SCHEMA one by one (executescript would commit our transaction)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction; IMMEDIATE takes the write lock at once, so the log head read inside it is the
    head the new entry follows, across threads and processes."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
