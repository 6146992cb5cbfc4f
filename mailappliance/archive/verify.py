"""Check the whole archive: the log chain, every checkpoint, every stored message, and index against log.

What is trusted: the public key given (from the site's vault, not from the store) and nothing on the host.
The chain shows removed, reordered and changed entries; a signed checkpoint shows a chain rewritten with
recomputed hashes; the log then says which messages must exist with which content, and every stored file is
read back and hashed. Each problem is one line naming the entry, the checkpoint or the message.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import keys, log, objects, packs, parse
from .store import Archive

# Beyond this many damaged entries, only the neighbouring positions are tried as an entry's original seq.
WIDE_SEARCH_LIMIT = 1000


@dataclass(frozen=True)
class Problem:
    code: str
    text: str


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, code: str, text: str) -> None:
        self.problems.append(Problem(code, text))

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": [{"code": p.code, "text": p.text} for p in self.problems],
                "notes": self.notes, "counts": self.counts}


def verify(archive: Archive, public_key: Ed25519PublicKey, anchors: Sequence[tuple[int, str]] = ()) -> Report:
    """`anchors`: (seq, entry hash) pairs recorded off the host earlier (an audit report keeps its last
    checkpoint's): whoever holds the signing key, root on the host included, cannot rewrite the log up to them."""
    report = Report()
    conn = archive.connection()
    entries = list(log.entries(conn))
    report.counts["log_entries"] = len(entries)
    original = _check_chain(entries, report)
    _check_anchors(original, anchors, report)
    _check_checkpoints(entries, original, public_key, report)
    _check_index(archive, entries, report)
    _check_files(archive, entries, report)
    return report


def _check_anchors(by_original: dict[int, log.Entry], anchors: Sequence[tuple[int, str]], report: Report) -> None:
    for seq, recorded in anchors:
        entry = by_original.get(seq)
        if entry is None:
            report.add("anchor-missing", f"log entry {seq}, recorded earlier with hash {recorded}, is missing")
        elif entry.entry_hash != recorded.lower():
            report.add("anchor-mismatch", f"log entry {seq} has hash {entry.entry_hash}, but {recorded} was recorded "
                       "for it earlier: the log up to it was rewritten since (and signed again with the site's key)")
    if anchors:
        report.counts["anchors"] = len(anchors)


def _original_seqs(entries: list[log.Entry]) -> dict[int, int]:
    """For each position, the seq its content was written at, where its hash says so."""
    original = {e.seq: e.seq for e in entries if e.computed_hash() == e.entry_hash}
    broken = [e for e in entries if e.seq not in original]
    positions = {e.seq for e in broken}
    for entry in broken:
        candidates = {entry.seq - 1, entry.seq + 1}
        if len(broken) <= WIDE_SEARCH_LIMIT:
            candidates |= positions
        for seq in sorted(candidates - {entry.seq}, key=lambda s: abs(s - entry.seq)):
            if seq > 0 and entry.computed_hash(seq) == entry.entry_hash:
                original[entry.seq] = seq
                break
    return original


def _check_chain(entries: list[log.Entry], report: Report) -> dict[int, log.Entry]:
    """Problems of the chain itself; the entries by the seq they were written at."""
    original = _original_seqs(entries)
    by_original: dict[int, log.Entry] = {}
    for entry in entries:
        seq = original.get(entry.seq)
        if seq is None:
            report.add("entry-changed", f"log entry {entry.seq} changed: its content does not match its hash")
            by_original.setdefault(entry.seq, entry)
        elif seq != entry.seq:
            report.add("entry-reordered", f"log entry {seq} reordered: it is now at position {entry.seq}")
            by_original.setdefault(seq, entry)
        else:
            by_original.setdefault(seq, entry)
    last = max(by_original, default=0)
    for seq in range(1, last + 1):
        if seq not in by_original:
            report.add("entry-removed", f"log entry {seq} removed")
    for seq, entry in sorted(by_original.items()):
        before = by_original.get(seq - 1)
        expected = log.GENESIS if seq == 1 else before.entry_hash if before else None
        if expected is not None and entry.prev_hash != expected:
            if before is not None and original.get(before.seq) == seq - 1:
                report.add("entry-changed", f"log entry {seq - 1} changed: its hash was recomputed, and entry "
                           f"{seq} still links to the original")
            else:
                report.add("link-broken", f"log entry {seq}: its link to entry {seq - 1} is broken")
    return by_original


def _check_checkpoints(entries: list[log.Entry], by_original: dict[int, log.Entry], public_key: Ed25519PublicKey,
                       report: Report) -> None:
    expected_id = keys.key_id(public_key)
    signed_up_to = 0
    count = signed = 0
    for entry in entries:
        if entry.kind != "checkpoint":
            continue
        count += 1
        details = entry.details
        try:
            head_seq, head_hash = int(details["head_seq"]), str(details["head_hash"])
            signature = bytes.fromhex(details["signature"])
        except (KeyError, TypeError, ValueError):
            report.add("checkpoint-unreadable", f"checkpoint at seq {entry.seq}: unreadable details")
            continue
        if not keys.signature_valid(public_key, signature, log.checkpoint_payload(head_seq, head_hash, entry.time)):
            report.add("checkpoint-forged", f"checkpoint at seq {entry.seq}: signature invalid (forged, or signed "
                       f"by another key: it names key {details.get('key_id', '?')}, the key given is {expected_id})")
            continue
        signed += 1
        head = by_original.get(head_seq)
        actual = log.GENESIS if head_seq == 0 else head.entry_hash if head else None
        if actual != head_hash:
            report.add("log-rewritten", f"checkpoint at seq {entry.seq}: the log up to entry {head_seq} is not what "
                       f"was signed (log rewritten: signed head {head_hash[:16]}, the log has "
                       f"{(actual or 'no such entry')[:16]})")
            continue
        signed_up_to = max(signed_up_to, head_seq)
    report.counts["checkpoints"] = count
    last = entries[-1] if entries else None
    if last is None or last.seq <= 1:
        return
    if not signed:
        report.add("no-checkpoint", f"no checkpoint signed by key {expected_id}: the log is not protected against "
                   "rewriting; run the checkpoint verb with the site's key")
        return
    unsigned = [e for e in entries if e.seq > signed_up_to + 1]
    if signed_up_to and unsigned:
        report.notes.append(f"log entries {unsigned[0].seq} to {unsigned[-1].seq} (since {unsigned[0].time}) are "
                            "not yet covered by a signed checkpoint")


def _records(archive: Archive) -> dict[int, dict[str, Any]]:
    conn = archive.connection()
    records = {row["id"]: dict(row) for row in conn.execute(
        "SELECT id, sha256, instance, queue_id, sender, direction, channel, account, client_address, received, "
        "size, log_seq, deleted_seq FROM messages")}
    for record in records.values():
        record["recipients"] = set()
    for row in conn.execute("SELECT message, address FROM addresses WHERE role = 'rcpt'"):
        if row["message"] in records:
            records[row["message"]]["recipients"].add(row["address"])
    return records


def label(record: dict[str, Any]) -> str:
    queue = f"{record['instance']}/{record['queue_id']}" if record["queue_id"] else "no queue id"
    return f"message {record['sha256']} (queue id {queue}, received {record['received']})"


def _check_index(archive: Archive, entries: list[log.Entry], report: Report) -> None:
    records = _records(archive)
    report.counts["records"] = len(records)
    report.counts["deleted"] = sum(1 for r in records.values() if r["deleted_seq"] is not None)
    ingests = {e.record: e for e in entries if e.kind == "ingest" and isinstance(e.record, int)}
    deletes = {e.record: e for e in entries if e.kind == "delete" and isinstance(e.record, int)}
    for record_id, entry in sorted(ingests.items()):
        if record_id not in records:
            details = entry.details
            record = {"sha256": entry.object, "instance": details.get("instance", "?"),
                      "queue_id": details.get("queue_id", ""), "received": details.get("received", "?")}
            report.add("index-removed", f"{label(record)}: index row removed (record {record_id}, log entry "
                       f"{entry.seq})")
    for record_id, record in sorted(records.items()):
        entry = ingests.get(record_id)
        if entry is None:
            report.add("log-missing", f"{label(record)}: record {record_id} has no ingest log entry (added to the "
                       "index outside the archive)")
            continue
        differs = _differences(record, entry)
        if differs:
            report.add("index-changed", f"{label(record)}: index differs from its log entry {entry.seq} in "
                       f"{', '.join(differs)}")
        deleted = deletes.get(record_id)
        if record["deleted_seq"] is not None and deleted is None:
            report.add("silent-delete", f"{label(record)}: marked deleted without a delete log entry")
        elif deleted is not None and record["deleted_seq"] is None:
            report.add("index-changed", f"{label(record)}: deleted by log entry {deleted.seq} but listed as live")


def _differences(record: dict[str, Any], entry: log.Entry) -> list[str]:
    details = entry.details
    differs = [] if record["sha256"] == entry.object else ["sha256"]
    if record["log_seq"] != entry.seq:
        differs.append("log_seq")
    for name in ("instance", "queue_id", "sender", "direction", "channel", "account", "client_address",
                 "received"):
        if record[name] != parse.clean(str(details.get(name, ""))):
            differs.append(name)
    if record["size"] != details.get("size"):
        differs.append("size")
    logged = {parse.clean(str(r).lower(), 320) for r in details.get("recipients", [])} - {""}
    if record["recipients"] != logged:
        differs.append("recipients")
    return differs


def _check_files(archive: Archive, entries: list[log.Entry], report: Report) -> None:
    conn = archive.connection()
    live: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in _records(archive).values():
        if record["deleted_seq"] is None:
            live[record["sha256"]].append(record)
    objects_rows = {row["sha256"]: dict(row) for row in conn.execute("SELECT * FROM objects")}
    cold: dict[str, list[dict[str, Any]]] = defaultdict(list)
    checked = 0
    for sha256, records in sorted(live.items()):
        row = objects_rows.get(sha256)
        if row is None or row["location"] == "deleted":
            for record in records:
                report.add("file-missing", f"{label(record)}: file missing (its object is "
                           f"{'not in the index' if row is None else 'marked deleted'})")
            continue
        if row["location"] == "cold":
            cold[row["pack"]].append(row)
            continue
        checked += 1
        path = objects.path_for(archive.objects_dir, sha256)
        problem = _check_content(lambda: objects.read(archive.objects_dir, sha256), sha256)
        if problem == "missing":
            problem = f"file missing ({path})"
        for record in records if problem else ():
            report.add("file-missing" if "missing" in problem else "file-changed", f"{label(record)}: {problem}")
    checked += _check_packs(archive, entries, cold, live, report)
    report.counts["messages_checked"] = checked
    _note_strays(archive, objects_rows, report)


def _check_content(read: Any, sha256: str) -> str:
    """"" when the stored content has the hash, else what is wrong with it."""
    try:
        raw = read()
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError) as error:
        return f"file changed (cannot be read back: {error})"
    if hashlib.sha256(raw).hexdigest() != sha256:
        return "file changed (its content no longer has this SHA-256)"
    return ""


def _check_packs(archive: Archive, entries: list[log.Entry], cold: dict[str, list[dict[str, Any]]],
                 live: dict[str, list[dict[str, Any]]], report: Report) -> int:
    conn = archive.connection()
    logged: dict[str, tuple[str, int]] = {}
    for entry in entries:
        if entry.kind in ("tier", "repack"):
            replaced = entry.details.get("replaces")
            if replaced:
                logged.pop(str(replaced), None)
            if entry.details.get("pack"):
                logged[str(entry.details["pack"])] = (entry.object, entry.seq)
    listed = {row["name"]: dict(row) for row in conn.execute("SELECT * FROM packs WHERE removed_seq IS NULL")}
    for name in sorted(set(logged) - set(listed)):
        report.add("pack-removed", f"pack {name} (log entry {logged[name][1]}): removed from the index")
    checked = 0
    report.counts["packs"] = len(listed)
    for name in sorted(set(listed) | set(cold)):
        path = archive.cold_root / name
        members = sorted(cold.get(name, []), key=lambda row: (row["chunk_offset"], row["member_offset"]))
        if name not in logged:
            report.add("pack-unlogged", f"pack {name}: no tier log entry names it")
        elif not path.is_file():
            report.add("pack-missing", f"pack {name}: file missing ({path})")
        elif packs.file_sha256(path) != logged[name][0]:
            report.add("pack-changed", f"pack {name}: file changed (its SHA-256 differs from log entry "
                       f"{logged[name][1]})")
        reader = packs.PackReader(path)
        for row in members:
            checked += 1
            member = packs.Member(row["sha256"], row["chunk_offset"], row["chunk_length"], row["member_offset"],
                                  row["size"])
            problem = _check_content(lambda member=member: reader.member(member), row["sha256"])
            if problem == "missing":
                problem = f"pack {name} missing"
            for record in live[row["sha256"]] if problem else ():
                report.add("file-changed" if "changed" in problem else "file-missing",
                           f"{label(record)}: {problem} (in pack {name})")
    return checked


def _note_strays(archive: Archive, objects_rows: dict[str, dict[str, Any]], report: Report) -> None:
    for folder, _dirs, files in os.walk(archive.objects_dir):
        for name in sorted(files):
            path = Path(folder) / name
            if name.startswith(objects.TEMP_PREFIX):
                report.notes.append(f"temporary file {path}: left by an interrupted write; no message lost")
                continue
            sha256 = name.removesuffix(objects.SUFFIX)
            row = objects_rows.get(sha256)
            if row is None:
                report.notes.append(f"unreferenced file {path}: written by an ingest that did not commit (no "
                                    "message lost: the sender was not told it was accepted)")
            elif row["location"] != "hot":
                report.notes.append(f"file {path}: its message is {row['location']}; a removal was interrupted "
                                    "and the next retention or tier run removes it")
