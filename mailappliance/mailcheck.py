"""An end-to-end mail check: send a message over SMTP, then find it in the mailbox over IMAPS."""

from __future__ import annotations

import imaplib
import smtplib
import ssl
import time
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from mailappliance import exit_codes
from mailappliance.errors import UserError

SENDER = "visitor@example.net"


def send_and_receive(address: str, recipient: str, password: str, log_hint: str, timeout: float = 60) -> str:
    """Deliver a uniquely marked message to `recipient` at `address`, then wait for it in its INBOX.

    Returns the Subject of the message found; raises UserError (mail-check exit code) on any failure,
    ending with `log_hint`, which says where to look next.
    """
    try:
        return _send_and_receive(address, recipient, password, timeout)
    except _CheckFailed as exc:
        raise UserError(f"{exc}; {log_hint}", exit_code=exit_codes.EXIT_CODE_MAIL_CHECK_FAILED) from None


class _CheckFailed(Exception):
    pass


def _send_and_receive(address: str, recipient: str, password: str, timeout: float) -> str:
    subject = f"mailappliance demo {uuid.uuid4()}"
    send(address, recipient, subject)
    deadline = time.monotonic() + timeout
    while True:
        if find(address, recipient, password, subject):
            return subject
        if time.monotonic() > deadline:
            raise _CheckFailed(
                f"the test message to {recipient} did not arrive in its INBOX within {timeout:g} seconds")
        time.sleep(2)


def send(address: str, recipient: str, subject: str) -> None:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = recipient
    message["Subject"] = subject
    # A well-formed message, as a real client sends it: without these headers Rspamd scores it as spam
    # and Sieve files it into Junk, where the check would not look.
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=SENDER.partition("@")[2])
    message.set_content("This message was sent by `mailappliance demo` to check delivery from SMTP to IMAP.\n")
    try:
        with smtplib.SMTP(address, 25, timeout=30) as smtp:
            smtp.ehlo("demo-client.example.net")
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        reason = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise _CheckFailed(f"SMTP {address}:25 refused the test message: {exc.smtp_code} {reason}") from None
    except smtplib.SMTPRecipientsRefused as exc:
        code, reason = next(iter(exc.recipients.values()))
        raise _CheckFailed(
            f"SMTP {address}:25 refused recipient {recipient}: {code} {reason.decode(errors='replace')}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise _CheckFailed(f"cannot send over SMTP to {address}:25: {exc}") from None


def find(address: str, user: str, password: str, subject: str) -> bool:
    # The demo appliance has a self-signed certificate, so the check encrypts without verifying it.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with imaplib.IMAP4_SSL(address, 993, ssl_context=context, timeout=30) as imap:
            imap.login(user, password)
            imap.select("INBOX", readonly=True)
            status, data = imap.search(None, "HEADER", "Subject", f'"{subject}"')
            return status == "OK" and bool(data and data[0].split())
    except imaplib.IMAP4.error as exc:
        raise _CheckFailed(f"IMAPS {address}:993 rejected {user}: {exc}") from None
    except (OSError, ssl.SSLError) as exc:
        raise _CheckFailed(f"cannot read the mailbox over IMAPS at {address}:993: {exc}") from None
