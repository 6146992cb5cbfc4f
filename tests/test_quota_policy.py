"""The mailbox quota policy (Postfix spawn service): answers from Dovecot's usage files when the message fits, by
Dovecot's own arithmetic, and leaves every other case to Dovecot's quota-status. What Dovecot then answers is
proven against the real Dovecot in molecule/default/tests/test_70_quota.py; here: the decisions that need no
Dovecot, and that an unreachable Dovecot defers (4xx), never passes."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mailappliance.project import PROJECT_DIR

SCRIPT = PROJECT_DIR / "roles" / "postfix" / "files" / "usr" / "local" / "sbin" / "mailappliance-quota-policy"
MIB = 1024 * 1024


def load_module():
    loader = importlib.machinery.SourceFileLoader("quota_policy", str(SCRIPT))
    spec = importlib.util.spec_from_loader("quota_policy", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


policy = load_module()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def usage_file(path: Path, used: int, messages: int = 3) -> Path:
    """What Dovecot's dict quota writes with the file driver: key line, value line."""
    path.write_text(f"priv/quota/storage\n{used}\npriv/quota/messages\n{messages}\n", encoding="ascii")
    return path


@pytest.fixture
def limits(tmp_path: Path) -> dict:
    return {"grace_percent": 0, "mailboxes": {
        "alice@alpha.test": {"bytes": 10 * MIB, "usage": str(usage_file(tmp_path / "alice", 2 * MIB))},
        "full@alpha.test": {"bytes": 1 * MIB, "usage": str(usage_file(tmp_path / "full", 1 * MIB))},
        "nofile@alpha.test": {"bytes": 1 * MIB, "usage": str(tmp_path / "never-written")},
        "unlimited@alpha.test": {"bytes": 0, "usage": str(tmp_path / "never-written")},
    }}


def request(recipient: str, size: int | None = None) -> list[str]:
    lines = ["request=smtpd_access_policy", "protocol_state=RCPT", "sender=bob@example.test",
             f"recipient={recipient}"]
    return lines + ([f"size={size}"] if size is not None else [])


@pytest.mark.parametrize(("used", "limit", "size", "grace", "fits"), [
    (0, 100, 100, 0, True),     # exactly filling the quota is allowed
    (0, 100, 101, 0, False),
    (99, 100, 1, 0, True),
    (100, 100, 1, 0, False),    # at the limit nothing more, whatever the grace
    (100, 100, 1, 10, False),
    (95, 100, 15, 10, True),    # below the limit, the last message may pass it by the grace (10% of 100)
    (95, 100, 16, 10, False),
    (50, 100, 0, 0, True),      # no SIZE from the client: counted as 1 byte, as Dovecot does
    (100, 100, 0, 0, False),
    (10**12, 0, 10**9, 0, True),  # 0: no limit
])
def test_fits_is_dovecots_test_at_save(used, limit, size, grace, fits):
    assert policy.fits(used, limit, size, grace) is fits


@pytest.mark.parametrize(("text", "used"), [
    ("priv/quota/storage\n1598668\npriv/quota/messages\n297\n", 1598668),
    ("priv/quota/messages\n297\npriv/quota/storage\n42\n", 42),
    ("priv/quota/messages\n297\n", None),       # no storage figure
    ("priv/quota/storage\n-5\n", None),
    ("priv/quota/storage\n12abc\n", None),
    ("", None),
    ("\xff\xfe", None),                         # not ASCII
])
def test_usage_is_read_from_the_mailbox_quota_file(tmp_path, text, used):
    path = tmp_path / "usage"
    path.write_bytes(text.encode("latin-1"))
    assert policy.read_usage(str(path)) == used


def test_a_missing_usage_file_is_unknown(tmp_path):
    assert policy.read_usage(str(tmp_path / "absent")) is None


def test_a_message_that_fits_is_answered_without_dovecot(limits):
    service = policy.QuotaPolicy(limits, f"inet:127.0.0.1:{closed_port()}")
    assert service.answer(request("alice@alpha.test", 100_000)) == "DUNNO"
    # Case and +extension lead to the same mailbox.
    assert service.answer(request("Alice+orders@ALPHA.test", 100_000)) == "DUNNO"
    assert service.answer(request("unlimited@alpha.test", 10**10)) == "DUNNO"


@pytest.mark.parametrize("recipient", ["bob@alpha.test", "alias@beta.test", "", "not-an-address"])
def test_an_address_that_is_no_mailbox_is_left_to_the_other_restrictions(limits, recipient):
    # Dovecot's quota-status answers these DUNNO too (quota_status_nouser).
    service = policy.QuotaPolicy(limits, f"inet:127.0.0.1:{closed_port()}")
    assert service.answer(request(recipient, 10)) == "DUNNO"


@pytest.mark.parametrize(("recipient", "size"), [
    ("full@alpha.test", 10),            # at its limit
    ("alice@alpha.test", 9 * MIB),      # would pass the limit
    ("nofile@alpha.test", 10),          # no usage file yet: only Dovecot knows
])
def test_every_other_case_goes_to_dovecot_and_an_unreachable_dovecot_defers(limits, recipient, size):
    service = policy.QuotaPolicy(limits, f"inet:127.0.0.1:{closed_port()}")
    assert service.answer(request(recipient, size)) == policy.TEMPORARY_FAILURE
    assert policy.TEMPORARY_FAILURE.startswith("DEFER_IF_PERMIT 4.")


def test_without_its_limits_file_every_request_goes_to_dovecot(tmp_path):
    port = closed_port()
    result = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "--limits", str(tmp_path / "absent.json"),
         "--dovecot", f"inet:127.0.0.1:{port}"],
        input=("\n".join(request("alice@alpha.test", 10)) + "\n\n").encode(), capture_output=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.decode() == f"action={policy.TEMPORARY_FAILURE}\n\n"


def test_the_process_answers_each_request_of_a_kept_connection_in_order(tmp_path, limits):
    """As Postfix's spawn(8) runs it: the connection on standard input and output, several requests on it, and
    nothing else on standard output (errors go to syslog)."""
    (tmp_path / "limits.json").write_text(json.dumps(limits), encoding="utf-8")
    requests = [request("alice@alpha.test", 1000), request("bob@alpha.test"), request("full@alpha.test", 1),
                request("ALICE@alpha.test", 2000)]
    stdin = "".join("\n".join(lines) + "\n\n" for lines in requests)
    result = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "--limits", str(tmp_path / "limits.json"),
         "--dovecot", f"inet:127.0.0.1:{closed_port()}"],
        input=stdin.encode(), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    answers = result.stdout.decode().split("\n\n")
    assert answers == ["action=DUNNO", "action=DUNNO", f"action={policy.TEMPORARY_FAILURE}", "action=DUNNO", ""]


def test_a_request_far_too_large_closes_the_connection_without_an_answer(tmp_path, limits):
    (tmp_path / "limits.json").write_text(json.dumps(limits), encoding="utf-8")
    flood = "x" * (policy.MAX_REQUEST_BYTES + 10) + "\n\n"
    result = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "--limits", str(tmp_path / "limits.json"),
         "--dovecot", f"inet:127.0.0.1:{closed_port()}"],
        input=flood.encode(), capture_output=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout == b""
