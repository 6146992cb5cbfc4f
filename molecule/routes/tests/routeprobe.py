"""Client side of the routes scenario: the carriers as the tests see them (the messages each one stored, when, with
which envelope sender), SMTP sessions that send many messages, and the appliance's Postfix log. The general SMTP
helpers come from the default scenario's mailprobe."""

from __future__ import annotations

import base64
import json
import re
import smtplib
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import mailprobe

# Where every carrier keeps what it accepted (../prepare.yml: virtual(8) into one Maildir).
SINK_DIR = "/var/spool/sink/msgs/new"
DELIVERY_TIMEOUT = 120.0

# Runs inside a carrier: one JSON object per stored message that contains `marker` (all when empty).
_INDEX_SCRIPT = r"""
import email.parser, email.policy, json, os, sys
root, marker = sys.argv[1], sys.argv[2].encode()
found = []
for name in (os.listdir(root) if os.path.isdir(root) else []):
    path = os.path.join(root, name)
    with open(path, "rb") as handle:
        data = handle.read()
    if marker and marker not in data:
        continue
    head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data.split(b"\n\n", 1)[0])
    found.append({"file": name, "mtime": os.stat(path).st_mtime,
                  "message_id": (head.get("Message-ID") or "").strip(), "subject": (head.get("Subject") or "").strip(),
                  "return_path": (head.get("Return-Path") or "").strip(),
                  "received": " ".join((head.get_all("Received") or [""])[0].split())})
json.dump(found, sys.stdout)
"""


def podman(args: Sequence[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], input=stdin, capture_output=True, text=True, env=env, check=False)


@dataclass(frozen=True)
class Stored:
    """A message a carrier accepted, as it lies in its Maildir."""

    carrier: str
    file: str
    mtime: float
    message_id: str
    subject: str
    return_path: str
    received: str


@dataclass(frozen=True)
class Carrier:
    """A relay of the site (its name in the site file) and the container that plays it."""

    name: str
    container: str
    ip: str
    env: dict[str, str]

    def exec(self, *command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return podman(["exec", "-i", self.container, *command], self.env, stdin)

    def stored(self, marker: str = "") -> list[Stored]:
        out = self.exec("python3", "-c", _INDEX_SCRIPT, SINK_DIR, marker)
        assert out.returncode == 0, f"{self.container}: cannot list stored messages: {out.stderr}"
        return [Stored(carrier=self.name, **entry) for entry in json.loads(out.stdout)]

    def read(self, stored: Stored) -> bytes:
        out = self.exec("base64", "-w0", f"{SINK_DIR}/{stored.file}")
        assert out.returncode == 0, f"{self.container}: cannot read {stored.file}: {out.stderr}"
        return base64.b64decode(out.stdout.strip())

    def systemctl(self, verb: str, unit: str = "postfix") -> None:
        out = self.exec("systemctl", verb, unit)
        assert out.returncode == 0, f"{self.container}: systemctl {verb} {unit}: {out.stderr}"

    def log(self, lines: int = 40) -> str:
        out = self.exec("journalctl", "--no-pager", "-n", str(lines), "-u", "postfix@-", "-u", "dovecot")
        return out.stdout + out.stderr


def stored_everywhere(carriers: Iterable[Carrier], marker: str) -> list[Stored]:
    return [stored for carrier in carriers for stored in carrier.stored(marker)]


def wait_for_stored(carriers: Sequence[Carrier], marker: str, count: int = 1,
                    timeout: float = DELIVERY_TIMEOUT) -> list[Stored]:
    """The messages containing `marker` on any carrier, once there are at least `count` or `timeout` has passed."""
    found: list[Stored] = []

    def enough() -> bool:
        nonlocal found
        found = stored_everywhere(carriers, marker)
        return len(found) >= count

    mailprobe.wait_until(enough, timeout, interval=1.0)
    return found


def by_message_id(stored: Iterable[Stored]) -> dict[str, list[Stored]]:
    result: dict[str, list[Stored]] = {}
    for entry in stored:
        result.setdefault(entry.message_id, []).append(entry)
    return result


def message_id(token: str) -> str:
    """The Message-ID mailprobe.build_message gives a probe."""
    return f"<{token}@{mailprobe.CLIENT_HELO}>"


class Session:
    """One authenticated submission session (STARTTLS, AUTH) that sends message after message, as an application
    that sends in bulk does."""

    def __init__(self, ip: str, port: int, login: str, password: str) -> None:
        self.client, code, text = mailprobe.open_smtp(ip, port)
        assert code == 220, f"banner on {ip}:{port}: {code} {text}"
        self.client.ehlo()
        self.client.starttls(context=mailprobe.insecure_context())
        self.client.ehlo()
        self.client.login(login, password)

    def send(self, sender: str, recipient: str, message: bytes) -> mailprobe.SmtpOutcome:
        try:
            refused = self.client.sendmail(sender, [recipient], message)
        except smtplib.SMTPRecipientsRefused as err:
            code, text = err.recipients[recipient]
            return mailprobe.SmtpOutcome("rcpt", code, text.decode(errors="replace"))
        except smtplib.SMTPSenderRefused as err:
            return mailprobe.SmtpOutcome("mail", err.smtp_code, err.smtp_error.decode(errors="replace"))
        except smtplib.SMTPDataError as err:
            return mailprobe.SmtpOutcome("data", err.smtp_code, err.smtp_error.decode(errors="replace"))
        assert not refused, refused
        return mailprobe.SmtpOutcome("accepted", 250, "")

    def close(self) -> None:
        mailprobe.close_smtp(self.client)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --- the appliance's mail log -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    when: float
    ident: str
    text: str

    def __str__(self) -> str:
        return f"{time.strftime('%H:%M:%S', time.localtime(self.when))} {self.ident}: {self.text}"


def postfix_log(host: Any, since: float) -> list[LogLine]:
    """Every Postfix line of the journal since `since`, of every instance (postfix/..., postfix-orders/...)."""
    out = host.run("journalctl --since @%s -o json --no-pager", str(int(since) - 1))
    assert out.rc == 0, f"journalctl failed: {out.stderr}"
    lines = []
    for raw in out.stdout.splitlines():
        if not raw.strip():
            continue
        entry = json.loads(raw)
        ident = entry.get("SYSLOG_IDENTIFIER", "")
        if not ident.startswith("postfix"):
            continue
        message = entry.get("MESSAGE", "")
        if isinstance(message, list):  # journald's encoding of non-UTF-8 messages
            message = bytes(message).decode("utf-8", "replace")
        lines.append(LogLine(int(entry["__REALTIME_TIMESTAMP"]) / 1e6, ident, message))
    return lines


QUEUE_ID = r"[0-9A-F]{6,}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,}"


def queue_line(lines: Iterable[LogLine], pattern: str) -> re.Match[str] | None:
    """The first log line matching `pattern` (a regex that may use (?P<qid>...) with QUEUE_ID)."""
    compiled = re.compile(pattern)
    return next((m for line in lines if (m := compiled.search(line.text))), None)
