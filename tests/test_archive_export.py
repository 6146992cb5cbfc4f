"""Export: the folder verifies offline with its standalone verifier, run the way an auditor runs it, and any
tampering with the folder makes it fail."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailappliance.archive import keys, log
from mailappliance.archive.errors import ArchiveError
from mailappliance.archive.export import export, mboxrd_escape
from mailappliance.archive.search import Criteria
from mailappliance.archive.store import Archive
from test_archive_support import clean_env, envelope, make_archive, make_keys, message

DEBIAN_PYTHON = Path("/usr/bin/python3")


def auditor_python() -> str:
    """Debian's python3 with python3-cryptography when present (what an auditor's Debian box has)."""
    if DEBIAN_PYTHON.exists() and subprocess.run([str(DEBIAN_PYTHON), "-I", "-c", "import cryptography"],
                                                 capture_output=True, check=False).returncode == 0:
        return str(DEBIAN_PYTHON)
    return sys.executable


def run_verifier(folder: Path, public: Path | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    args = [auditor_python(), "-I", str(folder / "verify_export.py"), str(folder)]
    if public:
        args += ["--public-key", str(public)]
    return subprocess.run(args, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=60, check=False)


def filled(tmp_path: Path) -> tuple[Archive, Path, Path]:
    private, public = make_keys(tmp_path)
    archive = make_archive(tmp_path)
    for n in range(8):
        to = "auditor@acme.example" if n % 2 else "bob@partner.example"
        body = f"From the ledger {n}\r\nFrom here on a line that mbox must quote\r\n>From an already quoted line"
        archive.ingest(message(body=body, to=to), envelope(f"Q{n}", [to, "bcc-archive@acme.example"]))
        if n == 3:
            log.checkpoint(archive, keys.load_signing_key(private), "test")
            for other in range(3):
                archive.ingest(message(body=f"unrelated {other}"), envelope(f"U{other}", ["x@else.example"]))
    archive.ingest(message(body="unrelated"), envelope("Q9", ["x@else.example"]))
    log.checkpoint(archive, keys.load_signing_key(private), "test")
    return archive, private, public


@pytest.mark.parametrize("mbox", [False, True], ids=["eml", "mbox"])
def test_export_verifies_offline_with_the_standalone_verifier(tmp_path: Path, mbox: bool) -> None:
    archive, _, public = filled(tmp_path)
    out = tmp_path / "export"
    result = export(archive, Criteria(recipient="bcc-archive@acme.example"), out, keys.load_public_key(public),
                    mbox=mbox)
    archive.close()
    assert result.messages == 8
    # Two checkpoints cover the eight messages: two runs of the log, not one per message, and not the entries
    # of the unrelated messages between them.
    assert len(result.checkpoints) == 2 and result.entries == 5 + 6
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["record"]["recipients"][1] for m in manifest["messages"]] == ["bcc-archive@acme.example"] * 8
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["manifest.json", "public-key.pem", "verify_export.py", "README.txt", "messages.mbox" if mbox else "messages"])
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    done = run_verifier(out, public, elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("OK: 8 messages verified")
    without_key = run_verifier(out, None, elsewhere)
    assert without_key.returncode == 0 and "note: the key in the folder was used" in without_key.stdout
    # The site's public key as the inventory keeps it (mailappliance__archive_public_key: base64 of the raw key).
    pasted = elsewhere / "site-archive.pub"
    pasted.write_text(base64.b64encode(keys.raw_public(keys.load_public_key(public))).decode() + "\n")
    assert run_verifier(out, pasted, elsewhere).returncode == 0


def tamper_cases(out: Path, other_public: Path) -> dict[str, object]:
    first_eml = sorted((out / "messages").iterdir())[0]
    return {
        "message byte": lambda: first_eml.write_bytes(first_eml.read_bytes().replace(b"ledger", b"ledgeR", 1)),
        "message removed": lambda: first_eml.unlink(),
        "entry details": lambda: edit_manifest(out, lambda m: m["segments"][0]["entries"][1]["details"].update(
            sender="someone@else.example")),
        "entry removed": lambda: edit_manifest(out, lambda m: m["segments"][0]["entries"].pop(2)),
        "recipient in record": lambda: edit_manifest(out, lambda m: m["messages"][0]["record"].update(
            recipients=["bob@partner.example"])),
        "signature": lambda: edit_manifest(out, lambda m: m["segments"][0]["entries"][-1]["details"].update(
            signature="00" * 64)),
        "other key": lambda: shutil.copyfile(other_public, out / "public-key.pem"),
    }


def edit_manifest(out: Path, change: object) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    change(manifest)  # type: ignore[operator]
    (out / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("case", ["message byte", "message removed", "entry details", "entry removed",
                                  "recipient in record", "signature", "other key"])
def test_a_tampered_export_fails_the_verifier(tmp_path: Path, case: str) -> None:
    archive, _, public = filled(tmp_path)
    out = tmp_path / "export"
    export(archive, Criteria(recipient="bcc-archive@acme.example"), out, keys.load_public_key(public))
    archive.close()
    _, other_public = make_keys(tmp_path, "other")
    tamper_cases(out, other_public)[case]()  # type: ignore[operator]
    done = run_verifier(out, None if case == "other key" else public, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED:" in done.stdout and "problems; this export does not prove its messages" in done.stdout


def test_export_refuses_what_no_checkpoint_covers_and_a_used_folder(tmp_path: Path) -> None:
    private, public = make_keys(tmp_path)
    with make_archive(tmp_path) as archive:
        archive.ingest(message(), envelope())
        with pytest.raises(ArchiveError, match="not yet covered by a checkpoint signed by key"):
            export(archive, Criteria(), tmp_path / "out", keys.load_public_key(public))
        log.checkpoint(archive, keys.load_signing_key(private), "test")
        (tmp_path / "used").mkdir()
        (tmp_path / "used" / "x").write_text("x")
        with pytest.raises(ArchiveError, match="exists and is not empty"):
            export(archive, Criteria(), tmp_path / "used", keys.load_public_key(public))
        with pytest.raises(ArchiveError, match="no message matches"):
            export(archive, Criteria(text="absent"), tmp_path / "none", keys.load_public_key(public))


def test_mboxrd_quoting() -> None:
    assert mboxrd_escape(b"a\nFrom x\n>From y\nFromage\n") == b"a\n>From x\n>>From y\nFromage\n"
