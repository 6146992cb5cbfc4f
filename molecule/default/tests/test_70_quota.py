"""A full mailbox refuses new mail while the sender is connected: Postfix asks Dovecot's
quota-status service at RCPT, so nothing is accepted only to bounce later.

Runs after the delivery tests because it fills tiny@beta.test; it empties it again afterwards."""

from __future__ import annotations

import time
import uuid

from mailprobe import (
    TINY,
    build_message,
    find_messages,
    maildir,
    new_token,
    outside_sender,
    smtp_transaction,
    wait_for_messages,
)

# 1.2 MiB: past the fixture's 1M quota for tiny@beta.test.
FILLER_BYTES = 1258291


def send(appliance, token: str, **kwargs):
    sender = outside_sender(token)
    message = build_message(sender, TINY, token)
    return smtp_transaction(appliance.ip, 25, sender, [TINY], message, mail_options=[f"SIZE={len(message)}"], **kwargs)


def test_over_quota_mailbox_refuses_mail_with_552(host, appliance):
    first = new_token()
    out = send(appliance, first)
    assert out.accepted, f"mail to an empty {TINY}: {out}"
    assert wait_for_messages(host, first, maildir(TINY)), f"first message never reached {maildir(TINY)}"

    filler = f"{maildir(TINY)}/cur/{int(time.time())}.M0P0.filler-{uuid.uuid4().hex}:2,S"
    try:
        fill = host.run(
            "{ printf 'Subject: filler\\n\\n'; yes 'filler line to push the mailbox past its quota' | head -c %s; }"
            " > %s && chown --reference=%s %s && doveadm quota recalc -u %s",
            str(FILLER_BYTES),
            filler,
            maildir(TINY),
            filler,
            TINY,
        )
        assert fill.rc == 0, f"could not fill {TINY}: {fill.stderr}"
        usage = host.run("doveadm quota get -u %s", TINY).stdout

        second = new_token()
        out = send(appliance, second)
        assert out.stage in ("rcpt", "data") and out.code == 552 and "5.2.2" in out.text, f"{out}\n{usage}"
        assert find_messages(host, second) == [], "mail for a full mailbox was stored"
    finally:
        host.run("rm -f -- %s && doveadm quota recalc -u %s", filler, TINY)
