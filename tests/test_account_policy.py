"""The sending accounts' policy service: quota and rate decisions, the Postfix protocol, counts that survive a
restart, and 4xx (never a pass) when counting fails."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailappliance.project import PROJECT_DIR

SCRIPT = PROJECT_DIR / "roles" / "postfix" / "files" / "usr" / "local" / "sbin" / "mailappliance-account-policy"
# 2026-12-02 12:00:30 UTC: half a minute into a minute, far from midnight.
NOON = 1796212830.0


def load_module():
    loader = importlib.machinery.SourceFileLoader("account_policy", str(SCRIPT))
    spec = importlib.util.spec_from_loader("account_policy", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["account_policy"] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


policy = load_module()


def write_accounts(path: Path, **accounts: tuple[int, int]) -> Path:
    data = {"accounts": {name: {"daily_quota": quota, "rate_per_minute": rate, "channel": "orders"}
                         for name, (quota, rate) in accounts.items()}}
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def service(tmp_path):
    accounts = write_accounts(tmp_path / "accounts.json", shop=(10, 3), news=(1000, 1000))
    return policy.PolicyService(accounts, tmp_path / "accounts.sqlite")


def ask(service, login: str, recipients: int, now: float, state: str = "END-OF-MESSAGE") -> str:
    return service.answer({"request": "smtpd_access_policy", "protocol_state": state, "sasl_username": login,
                           "recipient_count": str(recipients)}, now=now)


def test_the_daily_quota_counts_recipients_and_defers_the_message_that_would_pass_it(service):
    assert ask(service, "shop", 4, NOON) == "DUNNO"
    assert ask(service, "shop", 5, NOON + 60) == "DUNNO"
    refused = ask(service, "shop", 2, NOON + 120)
    assert refused.startswith("451 4.7.1 Account shop has used 9 of its daily quota of 10 recipients")
    assert "00:00 UTC" in refused
    # What still fits is sent: the refused message used nothing.
    assert ask(service, "shop", 1, NOON + 180) == "DUNNO"
    assert ask(service, "shop", 1, NOON + 240).startswith("451 4.7.1")


def test_the_quota_starts_again_the_next_utc_day(service):
    assert ask(service, "shop", 10, NOON) == "DUNNO"
    assert ask(service, "shop", 1, NOON + 60).startswith("451 4.7.1")
    assert ask(service, "shop", 1, NOON + 12 * 3600) == "DUNNO"


def test_the_rate_is_messages_per_minute(service):
    for _ in range(3):
        assert ask(service, "shop", 1, NOON) == "DUNNO"
    assert ask(service, "shop", 1, NOON + 10) == (
        "451 4.7.1 Account shop may send 3 messages a minute; try again in a minute")
    assert ask(service, "shop", 1, NOON + 31) == "DUNNO"  # the next minute


def test_accounts_are_counted_apart_and_logins_compare_without_case(service):
    for _ in range(3):
        assert ask(service, "SHOP", 1, NOON) == "DUNNO"
    assert ask(service, "shop", 1, NOON).startswith("451")
    assert ask(service, "news", 1, NOON) == "DUNNO"


@pytest.mark.parametrize("login", ["", "alice@alpha.test", "shop2"])
def test_a_login_that_is_no_account_is_left_to_the_other_restrictions(service, login):
    assert ask(service, login, 500, NOON) == "DUNNO"


def test_only_the_end_of_message_is_counted(service):
    assert ask(service, "shop", 50, NOON, state="RCPT") == "DUNNO"
    assert ask(service, "shop", 10, NOON) == "DUNNO"


def test_a_database_failure_defers_instead_of_passing(service, tmp_path):
    service.counter.db.close()
    assert ask(service, "shop", 1, NOON) == "451 4.3.0 Account policy temporarily unavailable"


def test_a_broken_accounts_file_on_reload_keeps_the_previous_accounts(service, tmp_path, capsys):
    (tmp_path / "accounts.json").write_text("{not json")
    service.reload()
    assert "keeping the previous accounts" in capsys.readouterr().err
    assert ask(service, "shop", 1, NOON) == "DUNNO"
    for _ in range(2):
        ask(service, "shop", 1, NOON)
    assert ask(service, "shop", 1, NOON).startswith("451 4.7.1")


# --- the real process, over a unix socket -------------------------------------------------------------------

def start(tmp_path: Path) -> subprocess.Popen:
    sock = tmp_path / "policy.sock"
    if sock.exists():
        sock.unlink()
    process = subprocess.Popen([sys.executable, str(SCRIPT), "--accounts", str(tmp_path / "accounts.json"),
                                "--database", str(tmp_path / "accounts.sqlite"), "--listen", str(sock)],
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not sock.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "the policy service did not open its socket"
        time.sleep(0.02)
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=10)


def session(tmp_path: Path, requests: list[dict[str, str]]) -> list[str]:
    """One Postfix-like connection: several requests, each answered with one action line and an empty line."""
    answers = []
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(tmp_path / "policy.sock"))
        stream = conn.makefile("rwb")
        for request in requests:
            stream.write("".join(f"{k}={v}\n" for k, v in request.items()).encode() + b"\n")
            stream.flush()
            line = stream.readline().decode()
            assert stream.readline() == b"\n"
            answers.append(line.rstrip("\n"))
    return answers


def end_of_message(login: str, recipients: int) -> dict[str, str]:
    return {"request": "smtpd_access_policy", "protocol_state": "END-OF-MESSAGE", "protocol_name": "ESMTP",
            "sasl_username": login, "recipient_count": str(recipients), "sender": f"{login}@shop.test"}


def test_the_service_speaks_postfix_policy_and_keeps_its_counts_across_a_restart(tmp_path):
    write_accounts(tmp_path / "accounts.json", shop=(5, 1000))
    process = start(tmp_path)
    try:
        assert session(tmp_path, [end_of_message("shop", 2), end_of_message("shop", 2)]) == [
            "action=DUNNO", "action=DUNNO"]
    finally:
        stop(process)
    process = start(tmp_path)
    try:
        answers = session(tmp_path, [end_of_message("shop", 2), end_of_message("shop", 1)])
    finally:
        stop(process)
    assert answers[0].startswith("action=451 4.7.1 Account shop has used 4 of its daily quota of 5"), answers
    assert answers[1] == "action=DUNNO"
    day = time.strftime("%Y-%m-%d", time.gmtime())
    with sqlite3.connect(tmp_path / "accounts.sqlite") as db:
        assert db.execute("SELECT recipients, messages, deferred FROM daily WHERE account = 'shop' AND day = ?",
                          (day,)).fetchone() == (5, 3, 1)


def test_sighup_reads_the_accounts_again(tmp_path):
    write_accounts(tmp_path / "accounts.json", shop=(1, 1000))
    process = start(tmp_path)
    try:
        assert session(tmp_path, [end_of_message("shop", 1), end_of_message("shop", 1)])[1].startswith("action=451")
        write_accounts(tmp_path / "accounts.json", shop=(3, 1000))
        os.kill(process.pid, 1)
        deadline = time.monotonic() + 10
        while session(tmp_path, [end_of_message("shop", 1)]) != ["action=DUNNO"]:
            assert time.monotonic() < deadline, "SIGHUP did not raise the quota"
            time.sleep(0.05)
    finally:
        stop(process)


def test_an_oversized_request_closes_the_connection(tmp_path):
    write_accounts(tmp_path / "accounts.json", shop=(1, 1000))
    process = start(tmp_path)
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(tmp_path / "policy.sock"))
            conn.sendall(b"sasl_username=shop\n" + b"x" * (policy.MAX_REQUEST_BYTES + 10) + b"\n")
            conn.settimeout(5)
            assert conn.recv(100) == b""
        assert session(tmp_path, [end_of_message("shop", 1)]) == ["action=DUNNO"]
    finally:
        stop(process)
