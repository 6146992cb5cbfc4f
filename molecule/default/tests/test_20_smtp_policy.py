"""Who may hand what to the appliance over SMTP: no open relay, no unknown recipients, passwords only
over TLS and only on the submission ports, and authenticated users send only as themselves."""

from __future__ import annotations

import re
import socket
import time

import pytest

from mailprobe import (
    ADMIN,
    ALICE,
    BOB,
    build_message,
    ehlo_keywords,
    find_messages,
    mailbox_dir,
    new_token,
    outside_sender,
    queued_from,
    smtp_transaction,
    wait_for_messages,
)


def test_unknown_recipient_is_refused_at_rcpt(appliance):
    token = new_token()
    recipient = "nobody@beta.test"
    out = smtp_transaction(
        appliance.ip, 25, outside_sender(token), [recipient], build_message(outside_sender(token), recipient, token)
    )
    assert (out.stage, out.code) == ("rcpt", 550), str(out)


def test_relaying_to_an_outside_domain_is_refused_without_auth(appliance):
    token = new_token()
    recipient = "x@outside.test"
    out = smtp_transaction(
        appliance.ip, 25, outside_sender(token), [recipient], build_message(outside_sender(token), recipient, token)
    )
    assert (out.stage, out.code) == ("rcpt", 554) and "5.7.1" in out.text, str(out)


def test_port_25_never_offers_auth(appliance):
    plain = ehlo_keywords(appliance.ip, 25)
    assert "starttls" in plain, f"port 25 offers no STARTTLS: {plain}"
    assert "auth" not in plain, f"port 25 offers AUTH before STARTTLS: {plain['auth']}"
    encrypted = ehlo_keywords(appliance.ip, 25, starttls=True)
    assert "auth" not in encrypted, f"port 25 offers AUTH after STARTTLS: {encrypted['auth']}"


def test_submission_offers_auth_only_after_starttls(appliance):
    plain = ehlo_keywords(appliance.ip, 587)
    assert "auth" not in plain, f"port 587 offers AUTH in clear text: {plain['auth']}"
    encrypted = ehlo_keywords(appliance.ip, 587, starttls=True)
    assert "auth" in encrypted, f"port 587 offers no AUTH after STARTTLS: {encrypted}"


def test_submissions_offers_auth_over_implicit_tls(appliance):
    features = ehlo_keywords(appliance.ip, 465, implicit_tls=True)
    assert "auth" in features, f"port 465 offers no AUTH: {features}"


def test_authenticated_user_cannot_send_as_another_mailbox(appliance):
    token = new_token()
    out = appliance.submit(ALICE, BOB, ADMIN, token)
    assert out.stage in ("mail", "rcpt") and out.code == 553 and "5.7.1" in out.text, str(out)


def test_authenticated_user_can_send_as_own_alias(host, appliance):
    token = new_token()
    sender = "sales@alpha.test"
    out = appliance.submit(ALICE, sender, BOB, token)
    assert out.accepted, str(out)
    assert wait_for_messages(host, token, mailbox_dir(BOB)), f"message from {sender} never reached {BOB}"


@pytest.mark.parametrize("sender", ["postmaster@alpha.test", "alice@alpha.test", "nobody@beta.test"])
def test_port_25_refuses_a_hosted_domain_as_envelope_sender(appliance, sender):
    token = new_token()
    out = smtp_transaction(appliance.ip, 25, sender, [ALICE], build_message(sender, ALICE, token))
    assert out.stage in ("mail", "rcpt") and 500 <= out.code < 600 and "5.7.1" in out.text, str(out)


def test_the_host_itself_may_use_a_hosted_sender_on_port_25(host):
    token = new_token()
    script = (
        "import smtplib; s = smtplib.SMTP('127.0.0.1', 25, local_hostname='localhost'); "
        f"s.sendmail('postmaster@alpha.test', ['{ALICE}'], 'Subject: {token}\\r\\n\\r\\nfrom the host\\r\\n'); s.quit()"
    )
    out = host.run("python3 -c %s", script)
    assert out.rc == 0, f"the host's own SMTP client was refused: {out.stderr}"
    assert wait_for_messages(host, token, mailbox_dir(ALICE)), "mail the host sent to itself never arrived"


def _reply(conn: socket.socket) -> bytes:
    """One complete SMTP reply (the last line has a space after the code)."""
    data = b""
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            return data
        data += chunk
        lines = data.split(b"\r\n")
        if len(lines) > 1 and re.match(rb"^\d{3} ", lines[-2]):
            return data


@pytest.mark.parametrize("end", [b"\n.\n", b"\r\n.\n"], ids=["LF.LF", "CRLF.LF"])
def test_smtp_smuggling_yields_one_message(host, appliance, log_allowances, end):
    """A non-standard end of DATA followed by a second, forged transaction in the same packet, then a
    pause after its DATA: the appliance must see one message, never two."""
    token, forged = new_token(), new_token()
    sender = outside_sender(token)
    first = build_message(sender, ALICE, token).rstrip(b"\r\n")
    smuggled = (
        end + f"MAIL FROM:<{outside_sender(forged)}>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n".encode()
    )
    second = build_message("ceo@outside.test", ALICE, forged)
    with log_allowances.expect(r"bare <LF>|bare newline|CR LF|improper command pipelining",
                               "smuggling attempt on purpose"):
        with socket.create_connection((appliance.ip, 25), timeout=60) as conn:
            assert _reply(conn).startswith(b"220")
            for command in (b"EHLO client.outside.test", f"MAIL FROM:<{sender}>".encode(),
                            f"RCPT TO:<{ALICE}>".encode(), b"DATA"):
                conn.sendall(command + b"\r\n")
                _reply(conn)
            conn.sendall(first + smuggled)
            time.sleep(2)
            conn.sendall(second + b"\r\n.\r\n")
            replies = _reply(conn)
            conn.sendall(b"QUIT\r\n")
            replies += _reply(conn)
    delivered = wait_for_messages(host, token, mailbox_dir(ALICE))
    assert len(delivered) == 1, f"expected the first message once, found {delivered}; replies: {replies!r}"
    assert find_messages(host, forged, mailbox_dir(ALICE)) == delivered, (
        f"the smuggled message was delivered on its own; replies: {replies!r}"
    )
    assert not queued_from(host, outside_sender(forged)), "the smuggled message is waiting in the queue"
