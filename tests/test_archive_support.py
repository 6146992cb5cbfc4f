"""Helpers for the archive tests (no tests here): a store in tmp_path, a key pair, messages and envelopes."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mailappliance.archive import keys
from mailappliance.archive.store import Archive, Envelope

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


def make_archive(tmp_path: Path) -> Archive:
    (tmp_path / "cold").mkdir(exist_ok=True)
    return Archive(tmp_path / "store", tmp_path / "cold", create=True)


def make_keys(folder: Path, name: str = "site") -> tuple[Path, Path]:
    """A private key file (raw 32 bytes, mode 0600) and its public key (PEM)."""
    key = Ed25519PrivateKey.generate()
    private = folder / f"{name}.key"
    private.write_bytes(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public = folder / f"{name}.pub"
    public.write_bytes(keys.public_pem(key.public_key()))
    return private, public


def message(subject: str = "Quarterly figures", body: str = "Please find the figures attached.",
            sender: str = "alice@acme.example", to: str = "bob@partner.example", extra: str = "") -> bytes:
    message_id = hashlib.sha256((subject + body + extra).encode("utf-8", "replace")).hexdigest()[:16]
    return (f"From: Alice <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{message_id}@acme.example>\r\n{extra}"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode("utf-8", "surrogateescape")


def envelope(queue_id: str = "4ABC123", recipients: Sequence[str] = ("bob@partner.example",),
             sender: str = "alice@acme.example", direction: str = "outbound", received: datetime | None = None,
             instance: str = "postfix", channel: str = "staff", account: str = "") -> Envelope:
    return Envelope(queue_id=queue_id, sender=sender, recipients=tuple(recipients), direction=direction,
                    channel=channel, account=account, client_address="192.0.2.7", received=received or NOW,
                    instance=instance)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def raw_db(archive: Archive) -> sqlite3.Connection:
    """A connection as an attacker with write access to the file has it: the log's triggers dropped."""
    conn = sqlite3.connect(archive.db_path, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS log_refuses_update")
    conn.execute("DROP TRIGGER IF EXISTS log_refuses_delete")
    return conn


def file_of(archive: Archive, sha256: str) -> Path:
    from mailappliance.archive import objects

    return objects.path_for(archive.objects_dir, sha256)


def clean_env() -> dict[str, str]:
    """An environment with nothing of ours in it (no PYTHONPATH, no virtualenv)."""
    return {"PATH": os.defpath, "LANG": "C.UTF-8"}
