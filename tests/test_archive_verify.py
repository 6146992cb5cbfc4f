"""verify: each kind of damage or tampering is found and named precisely."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mailappliance.archive import keys, log
from mailappliance.archive.store import Archive, Record
from mailappliance.archive.verify import Report, verify
from test_archive_support import envelope, file_of, make_archive, make_keys, message, raw_db


def populated(tmp_path: Path) -> tuple[Archive, list[Record], Path, Path]:
    """Five messages, a checkpoint, and one more message after it."""
    private, public = make_keys(tmp_path)
    archive = make_archive(tmp_path)
    records = [archive.ingest(message(body=f"message {n}"), envelope(f"Q{n}")) for n in range(5)]
    log.checkpoint(archive, keys.load_signing_key(private), "test")
    records.append(archive.ingest(message(body="after the checkpoint"), envelope("Q5")))
    return archive, records, private, public


def check(archive: Archive, public: Path) -> Report:
    return verify(archive, keys.load_public_key(public))


def texts(report: Report) -> list[str]:
    return [problem.text for problem in report.problems]


def test_an_intact_archive_verifies_and_notes_the_unsigned_tail(tmp_path: Path) -> None:
    archive, records, _, public = populated(tmp_path)
    report = check(archive, public)
    assert report.ok, texts(report)
    assert report.counts["log_entries"] == 8 and report.counts["messages_checked"] == 6
    assert len(report.notes) == 1
    assert report.notes[0].startswith("log entries 8 to 8 (since ") and "not yet covered" in report.notes[0]


def test_a_log_never_checkpointed_is_a_problem(tmp_path: Path) -> None:
    _, public = make_keys(tmp_path)
    with make_archive(tmp_path) as archive:
        archive.ingest(message(), envelope())
        assert [p.code for p in check(archive, public).problems] == ["no-checkpoint"]


def test_a_changed_byte_in_a_stored_file_names_the_message(tmp_path: Path) -> None:
    archive, records, _, public = populated(tmp_path)
    path = file_of(archive, records[2].sha256)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    problems = texts(check(archive, public))
    assert len(problems) == 1
    assert problems[0].startswith(f"message {records[2].sha256} (queue id postfix/Q2, received {records[2].received}): "
                                  "file changed (cannot be read back: ")


def test_a_stored_file_replaced_by_other_valid_content_is_changed(tmp_path: Path) -> None:
    archive, records, _, public = populated(tmp_path)
    file_of(archive, records[1].sha256).write_bytes(file_of(archive, records[3].sha256).read_bytes())
    assert texts(check(archive, public)) == [
        f"message {records[1].sha256} (queue id postfix/Q1, received {records[1].received}): file changed (its "
        "content no longer has this SHA-256)"]


def test_a_removed_file_names_the_message(tmp_path: Path) -> None:
    archive, records, _, public = populated(tmp_path)
    path = file_of(archive, records[4].sha256)
    path.unlink()
    assert texts(check(archive, public)) == [
        f"message {records[4].sha256} (queue id postfix/Q4, received {records[4].received}): file missing ({path})"]


def test_a_removed_log_entry(tmp_path: Path) -> None:
    archive, records, _, public = populated(tmp_path)
    raw_db(archive).execute("DELETE FROM log WHERE seq = 3")
    problems = texts(check(archive, public))
    assert "log entry 3 removed" in problems
    assert any(text.startswith(f"message {records[1].sha256} (queue id postfix/Q1") and "no ingest log entry" in text
               for text in problems)


def test_a_removed_entry_with_the_rest_renumbered_is_named(tmp_path: Path) -> None:
    archive, _, _, public = populated(tmp_path)
    conn = raw_db(archive)
    conn.execute("DELETE FROM log WHERE seq = 3")
    conn.execute("UPDATE log SET seq = -(seq - 1) WHERE seq > 3")
    conn.execute("UPDATE log SET seq = -seq WHERE seq < 0")
    problems = texts(check(archive, public))
    assert "log entry 3 removed" in problems
    assert "log entry 4 reordered: it is now at position 3" in problems


def test_reordered_entries(tmp_path: Path) -> None:
    archive, _, _, public = populated(tmp_path)
    conn = raw_db(archive)
    conn.execute("UPDATE log SET seq = 100 WHERE seq = 3")
    conn.execute("UPDATE log SET seq = 3 WHERE seq = 4")
    conn.execute("UPDATE log SET seq = 4 WHERE seq = 100")
    problems = texts(check(archive, public))
    assert "log entry 3 reordered: it is now at position 4" in problems
    assert "log entry 4 reordered: it is now at position 3" in problems


def test_a_changed_entry(tmp_path: Path) -> None:
    archive, _, _, public = populated(tmp_path)
    conn = raw_db(archive)
    details = json.loads(conn.execute("SELECT details FROM log WHERE seq = 4").fetchone()[0])
    details["recipients"] = ["someone.else@partner.example"]
    conn.execute("UPDATE log SET details = ? WHERE seq = 4", (json.dumps(details),))
    assert "log entry 4 changed: its content does not match its hash" in texts(check(archive, public))


def test_a_changed_entry_with_its_own_hash_recomputed(tmp_path: Path) -> None:
    archive, _, _, public = populated(tmp_path)
    conn = raw_db(archive)
    row = conn.execute("SELECT * FROM log WHERE seq = 4").fetchone()
    details = json.loads(row[5])
    details["sender"] = "nobody@elsewhere.example"
    new_hash = log.entry_hash(row[6], 4, row[1], row[2], row[3], row[4], details)
    conn.execute("UPDATE log SET details = ?, entry_hash = ? WHERE seq = 4", (json.dumps(details), new_hash))
    problems = texts(check(archive, public))
    assert "log entry 4 changed: its hash was recomputed, and entry 5 still links to the original" in problems


def rewrite_chain(archive: Archive, from_seq: int, change: dict[str, object]) -> None:
    """What an attacker without the key can do: change an entry and recompute every hash after it."""
    conn = raw_db(archive)
    rows = conn.execute("SELECT seq, time, kind, object, record, details, prev_hash FROM log WHERE seq >= ? "
                        "ORDER BY seq", (from_seq,)).fetchall()
    prev = rows[0][6]
    for seq, time, kind, obj, record, details_text, _ in rows:
        details = json.loads(details_text)
        if seq == from_seq:
            details.update(change)
        digest = log.entry_hash(prev, seq, time, kind, obj, record, details)
        conn.execute("UPDATE log SET details = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?",
                     (log.canonical(details).decode(), prev, digest, seq))
        prev = digest
    if "sender" in change:
        conn.execute("UPDATE messages SET sender = ? WHERE log_seq = ?", (change["sender"], from_seq))


def test_a_rewritten_chain_is_caught_by_the_signed_checkpoint(tmp_path: Path) -> None:
    archive, _, _, public = populated(tmp_path)
    rewrite_chain(archive, 3, {"sender": "innocent@acme.example"})
    problems = texts(check(archive, public))
    # Every hash and link holds; only the signature tells.
    assert len(problems) == 1
    assert problems[0].startswith("checkpoint at seq 7: the log up to entry 6 is not what was signed (log "
                                  "rewritten: signed head ")


def test_a_chain_rewritten_and_signed_again_with_the_key_is_caught_by_an_anchor(tmp_path: Path) -> None:
    """Root on the host holds the signing key: it can rewrite the log and sign it again. A hash recorded off
    the host before (an audit report keeps its last checkpoint's) still tells."""
    archive, _, private, public = populated(tmp_path)
    recorded = raw_db(archive).execute("SELECT entry_hash FROM log WHERE seq = 6").fetchone()[0]
    rewrite_chain(archive, 3, {"sender": "innocent@acme.example"})
    conn = raw_db(archive)
    conn.execute("DELETE FROM log WHERE seq >= 7")
    conn.execute("DELETE FROM messages WHERE log_seq >= 7")
    log.checkpoint(Archive(archive.root), keys.load_signing_key(private), "root")
    assert check(archive, public).ok
    report = verify(archive, keys.load_public_key(public), [(6, recorded)])
    assert [p.code for p in report.problems] == ["anchor-mismatch"]
    assert texts(report)[0].startswith(f"log entry 6 has hash ")
    assert f"but {recorded} was recorded for it earlier: the log up to it was rewritten" in texts(report)[0]
    assert verify(archive, keys.load_public_key(public), [(40, recorded)]).problems[0].code == "anchor-missing"


def test_a_forged_checkpoint_signed_by_another_key(tmp_path: Path) -> None:
    archive, _, _, public = populated(tmp_path)
    other_private, other_public = make_keys(tmp_path, "attacker")
    rewrite_chain(archive, 3, {"sender": "innocent@acme.example"})
    conn = raw_db(archive)
    conn.execute("DELETE FROM log WHERE seq >= 7")
    conn.execute("DELETE FROM messages WHERE log_seq >= 7")
    forged = log.checkpoint(Archive(archive.root), keys.load_signing_key(other_private), "attacker")
    problems = texts(check(archive, public))
    expected = keys.key_id(keys.load_public_key(public))
    attacker = keys.key_id(keys.load_public_key(other_public))
    assert problems == [f"checkpoint at seq {forged.seq}: signature invalid (forged, or signed by another key: it "
                        f"names key {attacker}, the key given is {expected})",
                        f"no checkpoint signed by key {expected}: the log is not protected against rewriting; run "
                        "the checkpoint verb with the site's key"]


def test_a_checkpoint_whose_signed_head_was_edited_is_forged(tmp_path: Path) -> None:
    archive, _, _, public = populated(tmp_path)
    rewrite_chain(archive, 3, {"sender": "innocent@acme.example"})
    conn = raw_db(archive)
    head = conn.execute("SELECT entry_hash FROM log WHERE seq = 6").fetchone()[0]
    rewrite_chain(archive, 7, {"head_hash": head})
    assert texts(check(archive, public))[0].startswith("checkpoint at seq 7: signature invalid (forged")


def test_an_index_row_removed_or_marked_deleted_silently(tmp_path: Path) -> None:
    archive, records, _, public = populated(tmp_path)
    conn = raw_db(archive)
    conn.execute("DELETE FROM messages WHERE id = ?", (records[0].id,))
    conn.execute("UPDATE messages SET deleted_seq = 999 WHERE id = ?", (records[1].id,))
    problems = texts(check(archive, public))
    assert problems == [
        f"message {records[0].sha256} (queue id postfix/Q0, received {records[0].received}): index row removed "
        f"(record {records[0].id}, log entry {records[0].log_seq})",
        f"message {records[1].sha256} (queue id postfix/Q1, received {records[1].received}): marked deleted "
        "without a delete log entry"]


def test_an_index_recipient_removed_differs_from_the_log(tmp_path: Path) -> None:
    archive, records, _, public = populated(tmp_path)
    raw_db(archive).execute("DELETE FROM addresses WHERE message = ? AND role = 'rcpt'", (records[2].id,))
    assert texts(check(archive, public)) == [
        f"message {records[2].sha256} (queue id postfix/Q2, received {records[2].received}): index differs from "
        f"its log entry {records[2].log_seq} in recipients"]


def test_the_log_refuses_update_and_delete(tmp_path: Path) -> None:
    import sqlite3

    with make_archive(tmp_path) as archive:
        conn = archive.connection()
        for statement in ("UPDATE log SET kind = 'x'", "DELETE FROM log"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)


def test_entry_hash_is_the_documented_encoding() -> None:
    details = {"b": 1, "a": "é"}
    expected = hashlib.sha256(bytes(32) + b'["mailappliance-archive-log/1",1,"t","ingest","ab",7,'
                              b'{"a":"\\u00e9","b":1}]').hexdigest()
    assert log.entry_hash(log.GENESIS, 1, "t", "ingest", "ab", 7, details) == expected


def test_garbage_written_into_the_log_is_named_not_a_crash(tmp_path: Path) -> None:
    archive, _, _, public = populated(tmp_path)
    conn = raw_db(archive)
    conn.execute("UPDATE log SET prev_hash = 'not hex', details = '{broken' WHERE seq = 2")
    conn.execute("UPDATE log SET record = 'x', time = 42 WHERE seq = 3")
    problems = texts(check(archive, public))
    assert "log entry 2 changed: its content does not match its hash" in problems
    assert "log entry 3 changed: its content does not match its hash" in problems
