"""The archive CLI: each verb, JSON output, one-line errors with exit code 2, changes logged with the
operator; and the package running alone on Debian's python3, as the role installs it."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailappliance.archive import cli, log
from mailappliance.archive.store import Archive
from test_archive_support import clean_env, make_keys, message

PACKAGE = Path(cli.__file__).parent


def run(capsys: pytest.CaptureFixture[str], *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    real_stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        code = cli.main(list(args))
    finally:
        sys.stdin = real_stdin
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "store"
    assert run(capsys, "init", "--store", str(path))[0] == 0
    (tmp_path / "cold").mkdir()
    return path


def test_ingest_search_checkpoint_verify_export(tmp_path: Path, store: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    private, public = make_keys(tmp_path)
    s = ["--store", str(store)]
    code, out, _ = run(capsys, "ingest", *s, "--queue-id", "4ABC", "--sender", "alice@acme.example", "--recipient",
                       "bob@partner.example", "--recipient", "hidden@acme.example", "--direction", "outbound",
                       "--received", "2026-12-01T10:00:00Z", stdin=message(subject="Hello\u202eevil"))
    assert code == 0 and out.startswith("archived as record 1: message ")
    code, out, _ = run(capsys, "search", *s, "--recipient", "hidden@acme.example")
    assert code == 0 and "alice@acme.example -> bob@partner.example, hidden@acme.example | Hello\\u202eevil |" in out
    code, out, _ = run(capsys, "search", *s, "--text", "figures", "--since", "2026-12-01", "--until", "2026-12-01",
                       "--json")
    assert code == 0 and [r["queue_id"] for r in json.loads(out)] == ["4ABC"]
    code, out, _ = run(capsys, "checkpoint", *s, "--key", str(private), "--operator", "timer")
    assert code == 0 and out.startswith("checkpoint at seq 3 signs entry 2")
    with Archive(store) as archive:
        assert next(log.entries(archive.connection(), 3, 3)).details["operator"] == "timer"
    code, out, _ = run(capsys, "verify", *s, "--public-key", str(public))
    assert code == 0 and out.splitlines()[-1].startswith("OK: 3 log entries, 1 checkpoints")
    # The last checkpoint's hash, as stats (and the audit report) show it, is an anchor verify holds the log to.
    head = json.loads(run(capsys, "stats", *s, "--json")[1])["last_checkpoint"]
    code, out, _ = run(capsys, "verify", *s, "--public-key", str(public), "--anchor", f"{head['seq']}:{head['hash']}")
    assert code == 0 and "1 anchors" in out.splitlines()[-1]
    code, out, _ = run(capsys, "verify", *s, "--public-key", str(public), "--anchor", f"{head['seq']}:{'0' * 64}")
    assert code == 1 and f"log entry {head['seq']} has hash {head['hash']}, but {'0' * 64} was recorded" in out
    code, _, err = run(capsys, "verify", *s, "--public-key", str(public), "--anchor", "3:nothex")
    assert code == 2 and "--anchor 3:nothex: expected SEQ:HASH" in err
    code, out, _ = run(capsys, "export", *s, "--public-key", str(public), "--out", str(tmp_path / "out"),
                       "--sender", "@acme.example")
    assert code == 0 and "exported 1 messages" in out
    code, out, _ = run(capsys, "stats", *s, "--json")
    data = json.loads(out)
    assert data["records"] == 1 and data["last_checkpoint"]["seq"] == 3 and data["free_bytes_store"] > 0
    code, out, _ = run(capsys, "public-key", "--key", str(private))
    assert code == 0 and out.startswith("-----BEGIN PUBLIC KEY-----")


def test_verify_exits_1_naming_the_damage(tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    private, public = make_keys(tmp_path)
    s = ["--store", str(store)]
    run(capsys, "ingest", *s, "--queue-id", "Q1", "--sender", "", "--recipient", "a@acme.example", "--direction",
        "inbound", stdin=b"Subject: x\r\n\r\nbody\r\n")
    run(capsys, "checkpoint", *s, "--key", str(private))
    next(p for p in (store / "objects").rglob("*.gz")).unlink()
    code, out, _ = run(capsys, "verify", *s, "--public-key", str(public), "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"] and report["problems"][0]["code"] == "file-missing"
    assert "(queue id postfix/Q1, received " in report["problems"][0]["text"]


def test_holds_retention_and_tier_are_logged_with_the_operator(tmp_path: Path, store: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    s = ["--store", str(store), "--operator", "officer"]
    for number, (day, to) in enumerate([("2015-01-10", "legal@partner.example"), ("2015-01-11", "x@partner.example"),
                                        ("2026-11-01", "y@partner.example")]):
        run(capsys, "ingest", *s, "--queue-id", f"Q{number}", "--sender", "a@acme.example", "--recipient", to,
            "--direction", "outbound", "--received", f"{day}T08:00:00Z", stdin=message(body=f"m{number}"))
    assert run(capsys, "hold", *s, "CASE-1", "--address", "legal@partner.example", "--from", "2015-01-01",
               "--reason", "dispute")[0] == 0
    code, out, _ = run(capsys, "holds", *s)
    assert out.splitlines()[0].startswith("CASE-1: legal@partner.example, 2015-01-01 to any time; dispute (by officer")
    code, out, _ = run(capsys, "retention", *s, "--at", "2026-12-03")
    assert code == 0 and out.splitlines()[-1] == "1 records would delete under the default policy"
    code, applied, _ = run(capsys, "retention", *s, "--at", "2026-12-03", "--apply")
    assert applied.replace("deleted", "would delete").splitlines()[:-1] == out.splitlines()[:-1]
    code, out, _ = run(capsys, "tier", *s, "--cold", str(tmp_path / "cold"), "--after-days", "30")
    # The held 2015 message and the one of November: one pack for each day.
    assert code == 0 and out.splitlines()[-1] == "2 packs"
    code, out, _ = run(capsys, "release", *s, "CASE-1", "--reason", "settled")
    assert code == 0
    with Archive(store) as archive:
        operators = {e.kind: e.details.get("operator") for e in log.entries(archive.connection())
                     if e.kind not in ("init", "ingest")}
    assert operators == {"hold": "officer", "retention": "officer", "delete": "officer", "tier": "officer",
                         "release": "officer"}
    # The cold root is remembered: later verbs find the packs without --cold.
    code, out, _ = run(capsys, "search", "--store", str(store), "--text", "m0", "--json")
    assert code == 0 and [(r["id"], r["tier"]) for r in json.loads(out)] == [(1, "cold")]
    with Archive(store) as archive:
        assert archive.read_message(archive.record(1).sha256) == message(body="m0")


@pytest.mark.parametrize(("args", "error"), [
    (["search", "--store", "{tmp}/absent"], "archive store {tmp}/absent not found; check the store path (--store)"),
    (["search", "--store", "{tmp}/empty"], "archive store {tmp}/empty holds no archive (archive.db missing)"),
    (["search", "--store", "{store}", "--since", "yesterday"], "--since: 'yesterday' is not a date; write YYYY-MM-DD"),
    (["search", "--store", "{store}", "--text", "**"], "text: '**' has no word to search for"),
    (["search", "--store", "{store}", "--text", "a AND (", "--fts"], "--fts: 'a AND (' is not a valid FTS5 query"),
    (["checkpoint", "--store", "{store}", "--key", "{tmp}/nokey"], "signing key {tmp}/nokey: cannot be read"),
    (["checkpoint", "--store", "{store}", "--key", "{tmp}/bad.key"], "signing key {tmp}/bad.key: not an Ed25519 "
                                                                     "private key"),
    (["checkpoint", "--store", "{store}", "--key", "{tmp}/open.key"], "group or others may read it (mode 0644); run "
                                                                      "chmod 600"),
    (["verify", "--store", "{store}", "--public-key", "{tmp}/bad.key"], "public key {tmp}/bad.key: not an Ed25519 "
                                                                        "public key"),
    (["retention", "--store", "{store}", "--policy", "{tmp}/policy.json"], "not JSON"),
    (["release", "--store", "{store}", "NOPE"], "release: no active hold for case 'NOPE'"),
    (["reconcile", "--store", "{store}", "--log", "{tmp}/nolog", "--since", "2026-12-01", "--until", "2026-12-02"],
     "--log {tmp}/nolog: no such file"),
    (["tier", "--store", "{store}", "--cold", "{tmp}/nocold", "--after-days", "30"],
     "cold store {tmp}/nocold not found; create it or mount its disk"),
    (["init", "--store", "{store}"], "already holds an archive"),
    (["search", "--store", "{store}", "--bogus"], "archive: unrecognized arguments: --bogus; see --help"),
    (["verify", "--store", "{store}"], "the following arguments are required: --public-key"),
])
def test_expected_problems_are_one_line_and_exit_2(tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str],
                                                   args: list[str], error: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.key").write_bytes(b"not a key at all")
    (tmp_path / "bad.key").chmod(0o600)
    private, _ = make_keys(tmp_path)
    shutil.copyfile(private, tmp_path / "open.key")
    (tmp_path / "open.key").chmod(0o644)
    (tmp_path / "policy.json").write_text("{oops")
    fill = {"tmp": str(tmp_path), "store": str(store)}
    code, out, err = run(capsys, *[a.format(**fill) for a in args])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("archive: error: ") and "Traceback" not in err
    assert error.format(**fill) in err


def test_the_package_runs_alone_on_debian_python(tmp_path: Path) -> None:
    """Copied the way the role installs it, beside nothing else of ours, under /usr/bin/python3 with Debian's
    python3-cryptography (38 on Debian 12)."""
    python = Path("/usr/bin/python3")
    if not python.exists() or subprocess.run([str(python), "-c", "import cryptography"], capture_output=True,
                                             check=False).returncode:
        pytest.skip("no Debian python3 with python3-cryptography here")
    host = tmp_path / "host"
    shutil.copytree(PACKAGE, host / "mailappliance" / "archive", ignore=shutil.ignore_patterns("__pycache__"))
    (host / "mailappliance" / "__init__.py").write_text("")
    private, public = make_keys(tmp_path)
    store = tmp_path / "store"

    def archive(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([str(python), "-E", "-s", "-m", "mailappliance.archive", *args, "--store", str(store)],
                              cwd=host, env=clean_env(), input=stdin, capture_output=True, timeout=60, check=False)

    assert archive("init").returncode == 0
    done = archive("ingest", "--queue-id", "Q1", "--sender", "a@acme.example", "--recipient", "b@acme.example",
                   "--direction", "internal", stdin=message())
    assert done.returncode == 0, done.stderr
    assert archive("checkpoint", "--key", str(private)).returncode == 0
    done = archive("verify", "--public-key", str(public))
    assert done.returncode == 0 and b"OK: " in done.stdout, done.stdout + done.stderr
    done = archive("search", "--text", "figures", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)[0]["queue_id"] == "Q1"


def test_reconcile_verb_reads_the_journal_and_exits_1_on_missing(tmp_path: Path, store: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from test_archive_reconcile import MAIL_LOG, populate

    with Archive(store) as archive:
        populate(archive)
    (tmp_path / "journal.txt").write_text(MAIL_LOG)
    code, out, _ = run(capsys, "reconcile", "--store", str(store), "--log", str(tmp_path / "journal.txt"),
                       "--since", "2026-12-03", "--until", "2026-12-03")
    assert code == 1
    assert out.splitlines()[-1] == ("FAILED: 6 accepted, 4 archived, 2 missing, 1 archived twice, 1 archived but "
                                    "never accepted (2026-12-03T00:00:00.000000Z to 2026-12-04T00:00:00.000000Z)")
    assert "missing: postfix-orders/4Qk1cM1nQSz9sWe accepted 2026-12-03T12:00:02.000000Z" in out


@pytest.mark.parametrize("form", ["pem", "hex"])
def test_signing_key_forms(tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str], form: str) -> None:
    from cryptography.hazmat.primitives import serialization

    from mailappliance.archive import keys

    private, public = make_keys(tmp_path)
    key = keys.load_signing_key(private)
    path = tmp_path / f"key.{form}"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()) if form == "pem" else private.read_bytes().hex()
                     .encode() + b"\n")
    path.chmod(0o600)
    assert run(capsys, "checkpoint", "--store", str(store), "--key", str(path))[0] == 0
    assert run(capsys, "verify", "--store", str(store), "--public-key", str(public))[0] == 0
