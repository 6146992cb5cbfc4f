"""When the scanners are down, mail waits instead of slipping through unscanned: SMTP clients get a
temporary 4xx and retry, locally submitted mail stays in the queue, and once the scanner is back
everything arrives exactly once.

These tests stop services; they run after everything else but the log check, and always start the
services again."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager

from mailprobe import (
    ALICE,
    attachment_message,
    build_message,
    find_messages,
    mailbox_dir,
    new_token,
    outside_sender,
    queued_from,
    smtp_transaction,
    wait_for_local_port,
    wait_for_messages,
    wait_until,
)

RSPAMD_PORT = 11332
CLAMD_PORT = 3310
# Postfix's own account of the stopped milter (smtpd for SMTP mail, cleanup for local submissions):
# exactly the fault these tests create.
MILTER_DOWN_LOG = r"connect to Milter service inet:127\.0\.0\.1:11332: Connection refused"
# How long mail that must not be delivered is watched for before the fault is lifted.
HOLD_WATCH = 15.0


@contextmanager
def stopped(host, units: list[str], port: int) -> Iterator[None]:
    """Stop `units` for the body; start again those that were active, and wait for `port`."""
    active = [unit for unit in units if host.run("systemctl is-active --quiet %s", unit).rc == 0]
    assert active, f"none of {units} is running before the test"
    out = host.run("systemctl stop " + " ".join(["%s"] * len(units)), *units)
    assert out.rc == 0, f"could not stop {units}: {out.stderr}"
    try:
        yield
    finally:
        for unit in active:
            host.run("systemctl start %s", unit)
        back = wait_for_local_port(host, port)
    assert back, f"{active} did not listen on 127.0.0.1:{port} again after the restart"


def settled_count(host, token: str, mailbox: str, sender: str) -> int:
    """Once the message arrived and nothing from `sender` is left in the queue, how often it is there."""
    assert wait_for_messages(host, token, mailbox_dir(mailbox)), f"{token} never reached {mailbox}"
    assert wait_until(
        lambda: not queued_from(host, sender), 120, interval=2.0
    ), f"mail from {sender} still queued: {queued_from(host, sender)}"
    return len(find_messages(host, token, mailbox_dir(mailbox)))


def test_smtp_gets_4xx_while_rspamd_is_down_and_resent_mail_arrives_once(host, appliance, log_allowances):
    token = new_token()
    sender = outside_sender(token)
    message = build_message(sender, ALICE, token)
    with log_allowances.expect(MILTER_DOWN_LOG, "rspamd is stopped on purpose"):
        with stopped(host, ["rspamd"], RSPAMD_PORT):
            out = smtp_transaction(appliance.ip, 25, sender, [ALICE], message)
    assert 400 <= out.code < 500, f"with rspamd down: {out}"
    resent = smtp_transaction(appliance.ip, 25, sender, [ALICE], message)
    assert resent.accepted, f"with rspamd back: {resent}"
    assert settled_count(host, token, ALICE, sender) == 1


def test_local_submission_waits_in_queue_while_rspamd_is_down(host, appliance, log_allowances):
    token = new_token()
    sender = f"{token}@alpha.test"
    message = base64.b64encode(build_message(sender, ALICE, token)).decode()
    with log_allowances.expect(MILTER_DOWN_LOG, "rspamd is stopped on purpose"):
        with stopped(host, ["rspamd"], RSPAMD_PORT):
            out = host.run("echo %s | base64 -d | /usr/sbin/sendmail -i -f %s -- %s", message, sender, ALICE)
            assert out.rc == 0, f"sendmail failed: {out.stderr}"
            assert wait_until(
                lambda: queued_from(host, sender), 60, interval=2.0
            ), "locally submitted mail is not in the queue"
            assert not wait_until(
                lambda: find_messages(host, token), HOLD_WATCH, interval=3.0
            ), "locally submitted mail was delivered unscanned while rspamd was down"
            assert queued_from(host, sender), "locally submitted mail left the queue while rspamd was down"
    flushed = host.run("postqueue -f")
    assert flushed.rc == 0, f"postqueue -f: {flushed.stderr}"
    assert settled_count(host, token, ALICE, sender) == 1


def test_smtp_gets_4xx_while_clamd_is_down_and_resent_mail_arrives_once(host, appliance):
    token = new_token()
    sender = outside_sender(token)
    # Rspamd hands only attachments to ClamAV, so the probe needs one.
    message = attachment_message(sender, ALICE, token)
    units = [u for u in ("clamav-daemon.socket", "clamav-daemon") if host.run("systemctl cat %s", u).rc == 0]
    with stopped(host, units, CLAMD_PORT):
        out = smtp_transaction(appliance.ip, 25, sender, [ALICE], message)
    assert 400 <= out.code < 500, f"with clamd down: {out}"

    # Like a real client, retry until the appliance has noticed clamd is back.
    def resend():
        outcome = smtp_transaction(appliance.ip, 25, sender, [ALICE], message)
        assert outcome.accepted or 400 <= outcome.code < 500, f"with clamd back: {outcome}"
        return outcome.accepted

    assert wait_until(resend, 120, interval=10.0), "mail still deferred two minutes after clamd came back"
    assert settled_count(host, token, ALICE, sender) == 1
