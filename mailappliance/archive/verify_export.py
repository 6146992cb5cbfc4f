#!/usr/bin/env python3
"""Verify an archive export offline: every message against its SHA-256, each message's log entry against the
hash chain up to a checkpoint, and each checkpoint's Ed25519 signature against the site's public key.

Stand-alone: Python 3.9 or later and the `cryptography` package (Debian: python3-cryptography), nothing else.

    python3 verify_export.py EXPORT_FOLDER [--public-key FILE]

Give --public-key with a copy of the site's public key that you obtained yourself; without it the key in the
folder is used, which shows the folder is consistent but not who signed it. Exit code 0 when everything
verifies, 1 when anything does not (each problem is printed on one line), 2 when the folder cannot be read.

The log format (the archive's log.py writes the same): entry_hash = SHA-256(prev_hash as 32 bytes ||
canonical JSON of ["mailappliance-archive-log/1", seq, time, kind, object, record, details]), canonical JSON
being sorted keys, no spaces, ASCII only. A checkpoint entry's details hold head_seq, head_hash and an Ed25519
signature over the canonical JSON of ["mailappliance-archive-checkpoint/1", head_seq, head_hash, time].
"""

import argparse
import base64
import hashlib
import json
import re
import sys
from pathlib import Path

ENTRY_FORMAT = "mailappliance-archive-log/1"
CHECKPOINT_FORMAT = "mailappliance-archive-checkpoint/1"
EXPORT_FORMAT = "mailappliance-archive-export/1"
# Envelope fields of a message's record that its ingest entry must state identically.
ENVELOPE = ("instance", "queue_id", "sender", "recipients", "direction", "channel", "account", "client_address",
            "received", "size")


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def entry_hash(entry):
    encoded = canonical([ENTRY_FORMAT, entry["seq"], entry["time"], entry["kind"], entry["object"], entry["record"],
                         entry["details"]])
    return hashlib.sha256(bytes.fromhex(entry["prev_hash"]) + encoded).hexdigest()


def load_public_key(path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = path.read_bytes()
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    if len(data.strip()) == 64:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(data.strip().decode("ascii")))
    if len(data.strip()) == 44:
        # base64 of the raw key: the site's mailappliance__archive_public_key, as an auditor copies it.
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(data.strip(), validate=True))
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def key_id(key):
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signature_valid(key, signature, payload):
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True


def check_segment(segment, key, problems):
    """The entries of one run whose chain holds up to a valid checkpoint, by seq (empty if it does not)."""
    entries = segment.get("entries") or []
    first = segment.get("first")
    if not entries:
        problems.append(f"log run from entry {first}: no entries")
        return {}
    for position, entry in enumerate(entries):
        seq = entries[0]["seq"] + position
        if entry.get("seq") != seq:
            problems.append(f"log entry {seq}: missing from the run (found entry {entry.get('seq')} in its place)")
            return {}
        if entry_hash(entry) != entry["entry_hash"]:
            problems.append(f"log entry {seq}: changed (its content does not match its hash)")
            return {}
        if position and entry["prev_hash"] != entries[position - 1]["entry_hash"]:
            problems.append(f"log entry {seq}: does not follow entry {seq - 1} (link broken)")
            return {}
    last = entries[-1]
    details = last.get("details", {})
    if last.get("kind") != "checkpoint":
        problems.append(f"log run {entries[0]['seq']}-{last['seq']}: does not end with a checkpoint")
        return {}
    by_seq = {entry["seq"]: entry for entry in entries}
    head = by_seq.get(details.get("head_seq"))
    if head is None or head["entry_hash"] != details.get("head_hash"):
        problems.append(f"checkpoint at seq {last['seq']}: the head it signs is not the entry before it")
        return {}
    payload = canonical([CHECKPOINT_FORMAT, details["head_seq"], details["head_hash"], last["time"]])
    try:
        signature = bytes.fromhex(details.get("signature", ""))
    except ValueError:
        signature = b""
    if not signature_valid(key, signature, payload):
        problems.append(f"checkpoint at seq {last['seq']}: signature invalid (forged, or signed by another key than "
                        f"{key_id(key)})")
        return {}
    return {seq: entry for seq, entry in by_seq.items() if seq <= details["head_seq"]}


def unescape_mboxrd(data):
    return b"\n".join(line[1:] if re.match(rb">+From ", line) else line for line in data.split(b"\n"))


def message_bytes(folder, item):
    path = (folder / item["file"]).resolve()
    if folder.resolve() not in path.parents:
        raise ValueError("file outside the export folder")
    data = path.read_bytes()
    if item.get("offset") is None:
        return data
    return unescape_mboxrd(data[item["offset"]:item["offset"] + item["length"]])


def verify(folder, key):
    """The problems found (empty: everything verifies) and a summary line."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("format") != EXPORT_FORMAT:
        return [f"manifest.json: format {manifest.get('format')!r}, this verifier reads {EXPORT_FORMAT}"], ""
    problems = []
    proven = {}
    checkpoints = []
    for segment in manifest.get("segments", []):
        entries = check_segment(segment, key, problems)
        proven.update(entries)
        if entries:
            checkpoints.append(segment["entries"][-1]["seq"])
    for item in manifest.get("messages", []):
        sha256 = item.get("sha256", "")
        record = item.get("record", {})
        name = f"message {sha256} ({item.get('file')}, queue id {record.get('instance')}/{record.get('queue_id')})"
        try:
            raw = message_bytes(folder, item)
        except (OSError, ValueError, KeyError, TypeError) as error:
            problems.append(f"{name}: cannot be read ({error})")
            continue
        if hashlib.sha256(raw).hexdigest() != sha256:
            problems.append(f"{name}: file changed (its content does not have this SHA-256)")
            continue
        entry = proven.get(item.get("entry"))
        if entry is None:
            problems.append(f"{name}: its log entry {item.get('entry')} is not in a verified run of the log")
            continue
        if entry["kind"] != "ingest" or entry["object"] != sha256 or entry["record"] != record.get("id"):
            problems.append(f"{name}: log entry {entry['seq']} is not the ingest of this message")
            continue
        differs = [field for field in ENVELOPE if record.get(field) != entry["details"].get(field)]
        if differs:
            problems.append(f"{name}: the manifest's {', '.join(differs)} differ from log entry {entry['seq']}")
    count = len(manifest.get("messages", []))
    summary = (f"{count} messages verified: each file has its SHA-256, and each message's log entry is in the "
               f"hash chain up to a checkpoint signed by key {key_id(key)} (checkpoints at seq "
               f"{', '.join(map(str, checkpoints))})")
    return problems, summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default=".", type=Path, help="the export folder (default: here)")
    parser.add_argument("--public-key", type=Path, help="the site's public key (PEM, base64, raw or hex)")
    args = parser.parse_args(argv)
    folder = args.folder
    key_path = args.public_key or folder / "public-key.pem"
    try:
        key = load_public_key(key_path)
    except (OSError, ValueError) as error:
        print(f"public key {key_path}: cannot be used ({error}); give the site's Ed25519 public key with "
              "--public-key", file=sys.stderr)
        return 2
    try:
        problems, summary = verify(folder, key)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"{folder}: not a readable export ({type(error).__name__}: {error}); check the folder", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"FAILED: {problem}")
    if problems:
        print(f"FAILED: {len(problems)} problems; this export does not prove its messages")
        return 1
    if args.public_key is None:
        print(f"note: the key in the folder was used (key id {key_id(key)}); compare it with the site's published "
              "key id, or pass --public-key")
    print(f"OK: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
