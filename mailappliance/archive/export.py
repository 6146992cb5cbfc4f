"""Export for auditors: the messages, a manifest with the proof of each, the public key and a verifier.

The proof of a message is the run of log entries from its `ingest` entry to the first checkpoint after it
signed by the site's key: whoever holds the messages, the manifest and the public key can recompute each
entry's hash, follow the links and check the signature, offline, with verify_export.py (the standard library
and python3-cryptography, nothing of ours). Runs that touch are merged, so an export of one busy day carries
one run of the log, not one per message.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import keys, log, timefmt
from .errors import ArchiveError
from .search import Criteria, search
from .store import Archive, Record

FORMAT = "mailappliance-archive-export/1"
VERIFIER = Path(__file__).with_name("verify_export.py")
README = """\
Archive export made {created} by mailappliance.

  messages/ or messages.mbox   the messages, byte for byte as archived
  manifest.json                each message's SHA-256, its record and the log entries proving it
  public-key.pem               the public key the checkpoints were signed with (key id {key_id})
  verify_export.py             a standalone verifier (Python 3 and python3-cryptography)

Verify offline, with a copy of the site's public key obtained independently of this folder:
  python3 verify_export.py . --public-key /path/to/site-archive-public.pem
Without --public-key it uses public-key.pem in this folder, which proves only that the folder is consistent.
"""


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    messages: int
    entries: int
    checkpoints: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "messages": self.messages, "entries": self.entries,
                "checkpoints": list(self.checkpoints)}


def _signed_checkpoints(archive: Archive, public_key: Ed25519PublicKey) -> list[log.Entry]:
    found = []
    for entry in log.entries(archive.connection(), kind="checkpoint"):
        details = entry.details
        try:
            payload = log.checkpoint_payload(int(details["head_seq"]), str(details["head_hash"]), entry.time)
            signature = bytes.fromhex(details["signature"])
        except (KeyError, TypeError, ValueError):
            continue
        if keys.signature_valid(public_key, signature, payload):
            found.append(entry)
    return found


def _segments(records: list[Record], checkpoints: list[log.Entry], key: str) -> list[tuple[int, int]]:
    """Merged runs [ingest seq, covering checkpoint seq] for the records."""
    runs = []
    uncovered = []
    for record in records:
        cover = next((c for c in checkpoints if int(c.details["head_seq"]) >= record.log_seq), None)
        if cover is None:
            uncovered.append(record)
            continue
        runs.append((record.log_seq, cover.seq))
    if uncovered:
        raise ArchiveError(f"{len(uncovered)} of the messages (first: {uncovered[0].label()}) are not yet covered "
                           f"by a checkpoint signed by key {key}; run the checkpoint verb (or export with "
                           "--checkpoint-key) first")
    merged: list[tuple[int, int]] = []
    for first, last in sorted(runs):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def mboxrd_escape(raw: bytes) -> bytes:
    return b"\n".join(b">" + line if re.match(rb">*From ", line) else line for line in raw.split(b"\n"))


def export(archive: Archive, criteria: Criteria, folder: Path, public_key: Ed25519PublicKey,
           mbox: bool = False) -> ExportResult:
    """Write the messages matching criteria, with their proof, into folder (new or empty)."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ArchiveError(f"export folder {folder} exists and is not empty; name a new folder")
    records = sorted(search(archive, criteria), key=lambda r: (r.received, r.id))
    if not records:
        raise ArchiveError("no message matches the search; nothing exported")
    key = keys.key_id(public_key)
    segments = _segments(records, _signed_checkpoints(archive, public_key), key)
    conn = archive.connection()
    runs = [[e.as_dict() for e in log.entries(conn, first, last)] for first, last in segments]
    logged = {entry["seq"]: entry["details"] for run in runs for entry in run}
    folder.mkdir(parents=True, exist_ok=True)
    listed = []
    mbox_file = (folder / "messages.mbox").open("wb") if mbox else None
    try:
        if not mbox:
            (folder / "messages").mkdir()
        for record in records:
            raw = archive.read_message(record.sha256)
            if hashlib.sha256(raw).hexdigest() != record.sha256:
                raise ArchiveError(f"{record.label()}: stored file changed; run verify, nothing exported past it")
            # The envelope as its log entry states it (the index keeps a cleaned copy for searching).
            item: dict[str, Any] = {"sha256": record.sha256, "size": len(raw), "entry": record.log_seq,
                                    "record": {**record.as_dict(), **logged[record.log_seq]}}
            if mbox_file is not None:
                mbox_file.write(f"From {record.sender or 'MAILER-DAEMON'} {record.received}\n".encode(
                    "utf-8", "surrogateescape"))
                escaped = mboxrd_escape(raw)
                item.update(file="messages.mbox", offset=mbox_file.tell(), length=len(escaped))
                mbox_file.write(escaped + (b"\n" if escaped.endswith(b"\n") else b"\n\n"))
            else:
                name = f"messages/{record.id:08d}-{record.sha256}.eml"
                (folder / name).write_bytes(raw)
                item["file"] = name
            listed.append(item)
    finally:
        if mbox_file is not None:
            mbox_file.close()
    created = timefmt.format_time(timefmt.now())
    manifest = {"format": FORMAT, "created": created, "criteria": criteria.as_dict(), "key_id": key,
                "public_key": "public-key.pem", "messages": listed,
                "segments": [{"first": first, "last": last, "entries": entries}
                             for (first, last), entries in zip(segments, runs)]}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=True) + "\n",
                                          encoding="ascii")
    (folder / "public-key.pem").write_bytes(keys.public_pem(public_key))
    shutil.copyfile(VERIFIER, folder / "verify_export.py")
    (folder / "README.txt").write_text(README.format(created=created, key_id=key), encoding="utf-8")
    return ExportResult(folder, len(records), sum(len(r) for r in runs), tuple(last for _, last in segments))
