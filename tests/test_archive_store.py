"""The archive store: ingest and search round trips, dedup, retries, durability order, hostile mail."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mailappliance.archive import keys, log, objects
from mailappliance.archive.errors import ArchiveError
from mailappliance.archive.search import Criteria, search
from mailappliance.archive.store import Archive, Envelope
from mailappliance.archive.verify import verify
from test_archive_support import envelope, file_of, make_archive, make_keys, message


def ids(archive: Archive, **criteria: object) -> list[int]:
    return sorted(record.id for record in search(archive, Criteria(**criteria)))  # type: ignore[arg-type]


def test_ingest_then_search_by_bcc_body_word_subject_and_header(tmp_path: Path) -> None:
    with make_archive(tmp_path) as archive:
        first = archive.ingest(message(body="The shipment of lanterns left Rotterdam."),
                               envelope("A1", ["bob@partner.example", "auditor@acme.example"]))
        second = archive.ingest(message(subject="Lunch", body="Noodles?", to="carol@acme.example"),
                                envelope("A2", ["carol@acme.example"], direction="internal"))
        # auditor@ is only in the envelope: a Bcc recipient.
        assert ids(archive, recipient="auditor@acme.example") == [first.id]
        assert ids(archive, recipient="AUDITOR@acme.example") == [first.id]
        assert ids(archive, recipient="carol@acme.example") == [second.id]
        assert ids(archive, recipient="@acme.example") == [first.id, second.id]
        assert ids(archive, text="lanterns") == [first.id]
        assert ids(archive, text="rotterdam lanterns") == [first.id]
        assert ids(archive, text="lanterns noodles") == []
        assert ids(archive, subject="lunch") == [second.id]
        assert ids(archive, sender="alice@acme.example", direction="internal") == [second.id]
        assert ids(archive, sender="partner.example") == []
        assert first.recipients == ("bob@partner.example", "auditor@acme.example")
        assert first.tier == "hot" and first.size == len(message(body="The shipment of lanterns left Rotterdam."))


def test_rfc2047_subject_charsets_html_and_attachment_names(tmp_path: Path) -> None:
    raw = (b"From: =?utf-8?q?J=C3=B6rg?= <joerg@acme.example>\r\nTo: x@partner.example\r\n"
           b"Subject: Re: =?iso-8859-1?q?Gr=FC=DFe_aus_?= =?utf-8?b?TcO8bmNoZW4=?=\r\n"
           b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n"
           b"Content-Type: text/html; charset=windows-1252\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
           b"<p>Caf=E9 <b>Br=FChl</b></p><script>hiddenword()</script>\r\n--zz\r\n"
           b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
           b"Content-Disposition: attachment; filename*=utf-8''Preisliste%20M%C3%A4rz.pdf\r\n\r\n"
           b"JVBERi0=\r\n--zz--\r\n")
    with make_archive(tmp_path) as archive:
        record = archive.ingest(raw, envelope())
        assert record.subject == "Re: Grüße aus München"
        assert record.header_from == "Jörg <joerg@acme.example>"
        assert ids(archive, subject="münchen") == [record.id]
        assert ids(archive, text="bruhl") == [record.id]  # accents folded
        assert ids(archive, text="cafe") == [record.id]
        assert ids(archive, text="hiddenword") == []  # script text is not text
        assert ids(archive, text="preisliste") == [record.id]
        assert ids(archive, sender="joerg@acme.example") == [record.id]


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00\xff\xfe not a message at all",
    b"Subject: =?bogus-charset?q?abc?= =?utf-8?b?!!!?=\r\nFrom: <<<@@>>>\r\nTo: ,,,\r\n\r\nbody",
    b"Content-Type: multipart/mixed; boundary=a\r\n\r\n" + b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n"
    * 2000,
    b"Content-Type: text/plain; charset=x-unknown\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@not base64",
    b"Subject: \xc3\x28 broken utf-8 \xff\r\nContent-Disposition: attachment; filename*=bad''%ZZ\r\n\r\nx",
])
def test_malformed_mail_is_archived_and_indexed_without_crash(tmp_path: Path, raw: bytes) -> None:
    with make_archive(tmp_path) as archive:
        record = archive.ingest(raw, envelope())
        assert archive.read_message(record.sha256) == raw
        assert ids(archive, recipient="bob@partner.example") == [record.id]


def test_hostile_header_values_are_data_never_sql_or_fts(tmp_path: Path) -> None:
    hostile = ["'); DROP TABLE messages; --", 'NEAR("a" "b") OR * subject:x', "\x00nul\u2028sep\u202ebidi",
               "x" * 5000, '"unbalanced', "{subject} : evil"]
    with make_archive(tmp_path) as archive:
        for number, value in enumerate(hostile):
            raw = message(subject=value.replace("\x00", ""), body=value, extra=f"X-Evil: {value}\r\n")
            archive.ingest(raw, envelope(f"Q{number}", [f"{value[:20]}@x.example"], sender=value))
        assert len(search(archive, Criteria())) == len(hostile)
        for value in hostile:
            search(archive, Criteria(text=value))
            search(archive, Criteria(subject=value))
            search(archive, Criteria(sender=value))
        assert ids(archive, text="DROP TABLE messages") == [1]
        assert ids(archive, text='NEAR("a" "b") OR * subject:x') == [2]
        with pytest.raises(ArchiveError, match="not a valid FTS5 query"):
            search(archive, Criteria(text='NEAR("a" "b', fts=True))
        assert ids(archive, text="DROP OR Noodles", fts=True) == [1]


def test_same_content_is_stored_once_but_each_ingest_is_a_record(tmp_path: Path) -> None:
    with make_archive(tmp_path) as archive:
        raw = message()
        first = archive.ingest(raw, envelope("A1"))
        second = archive.ingest(raw, envelope("B2", instance="postfix-orders"))
        assert first.id != second.id and first.sha256 == second.sha256
        files = [p for p in archive.objects_dir.rglob("*") if p.is_file()]
        assert files == [file_of(archive, first.sha256)]
        assert archive.connection().execute("SELECT COUNT(*) FROM log WHERE kind = 'ingest'").fetchone()[0] == 2


def test_a_retried_milter_call_returns_the_first_record(tmp_path: Path) -> None:
    with make_archive(tmp_path) as archive:
        first = archive.ingest(message(), envelope("A1"))
        again = archive.ingest(message(), envelope("A1"))
        assert again == first
        # Same queue id, other content (a different message reusing an id much later): a record of its own.
        other = archive.ingest(message(body="changed"), envelope("A1"))
        assert other.id != first.id
        assert len(search(archive, Criteria())) == 2


def test_ingest_is_durable_before_the_transaction_and_a_crash_in_between_is_no_loss(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = make_keys(tmp_path)
    with make_archive(tmp_path) as archive:
        archive.ingest(message(body="kept"), envelope("A1"))
        log.checkpoint(archive, keys.load_signing_key(private), "test")
        raw = message(body="crashed before commit")
        written: list[bool] = []

        def crash(*args: object, **kwargs: object) -> None:
            import hashlib

            written.append(file_of(archive, hashlib.sha256(raw).hexdigest()).is_file())
            raise OSError("power lost")

        monkeypatch.setattr(log, "append", crash)
        with pytest.raises(OSError):
            archive.ingest(raw, envelope("A2"))
        monkeypatch.undo()
        assert written == [True]  # the file was durable before the transaction began
        assert len(search(archive, Criteria())) == 1
        report = verify(archive, keys.load_public_key(public))
        assert report.ok, report.problems
        assert any(note.startswith("unreferenced file") and "no message lost" in note for note in report.notes)
        # The client retries: the stray file is reused and the message is archived.
        record = archive.ingest(raw, envelope("A2"))
        assert archive.read_message(record.sha256) == raw


def test_objects_are_written_atomically_with_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_fsync, real_replace = objects.os.fsync, objects.os.replace
    monkeypatch.setattr(objects.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(objects.os, "replace", lambda a, b: (calls.append("rename"), real_replace(a, b))[1])
    objects.store(tmp_path, "ab" * 32, b"message")
    # Folders made durable, then the file's data, the rename, and the folder holding the new name.
    assert calls[-3:] == ["fsync", "rename", "fsync"]
    assert objects.read(tmp_path, "ab" * 32) == b"message"
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_ingest_refuses_a_bad_envelope_so_the_milter_defers(tmp_path: Path) -> None:
    with make_archive(tmp_path) as archive:
        with pytest.raises(ValueError, match="direction"):
            archive.ingest(b"x", Envelope("Q", "a@b.example", ["c@d.example"], "sideways"))
        with pytest.raises(ValueError, match="recipients"):
            archive.ingest(b"x", Envelope("Q", "a@b.example", "c@d.example", "inbound"))


def test_a_missing_or_unmounted_store_is_an_error_not_a_new_archive(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="not found; check the store path"):
        Archive(tmp_path / "absent")
    (tmp_path / "mountpoint").mkdir()
    with pytest.raises(ArchiveError, match="is the store's disk mounted|check that its disk is mounted"):
        Archive(tmp_path / "mountpoint")
    assert not (tmp_path / "mountpoint" / "archive.db").exists()


def test_concurrent_ingests_from_threads_keep_one_chain(tmp_path: Path) -> None:
    private, public = make_keys(tmp_path)
    with make_archive(tmp_path) as archive:
        def work(thread: int) -> None:
            for number in range(15):
                archive.ingest(message(body=f"t{thread} n{number}"), envelope(f"T{thread}N{number}"))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log.checkpoint(archive, keys.load_signing_key(private), "test")
        assert len(search(archive, Criteria())) == 60
        report = verify(archive, keys.load_public_key(public))
        assert report.ok, report.problems


def test_batch_ingest_is_idempotent_like_single_ingest(tmp_path: Path) -> None:
    with make_archive(tmp_path) as archive:
        items = [(message(body=f"b{n}"), envelope(f"B{n}")) for n in range(3)]
        first = archive.ingest_batch(items + [items[0]])
        assert first[0] == first[3] and len(set(first)) == 3
        assert archive.ingest_batch(items) == first[:3]
        assert archive.ingest(*items[1]).id == first[1]
