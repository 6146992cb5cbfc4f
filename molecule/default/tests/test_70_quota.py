"""A full mailbox refuses new mail while the sender is connected: Postfix asks Dovecot's
quota-status service at RCPT, so nothing is accepted only to bounce later.

Runs after the delivery tests because it fills tiny@beta.test; it empties it again afterwards."""

from __future__ import annotations

import uuid

from mailprobe import (
    TINY,
    build_message,
    find_messages,
    mailbox_dir,
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
    assert wait_for_messages(host, first, mailbox_dir(TINY)), f"first message never reached {mailbox_dir(TINY)}"

    # The filler goes in through doveadm save with the quota switched off for that one command, then the quota
    # is counted again, as if the mailbox had filled up over time.
    filler = f"filler-{uuid.uuid4().hex}"
    try:
        fill = host.run(
            "{ printf 'Subject: %s\\n\\n'; yes 'filler line to push the mailbox past its quota' | head -c %s; }"
            " | doveadm -o plugin/quota= save -u %s -m INBOX && doveadm quota recalc -u %s",
            filler,
            str(FILLER_BYTES),
            TINY,
            TINY,
        )
        assert fill.rc == 0, f"could not fill {TINY}: {fill.stderr}"
        usage = host.run("doveadm quota get -u %s", TINY).stdout

        second = new_token()
        out = send(appliance, second)
        assert out.stage in ("rcpt", "data") and out.code == 552 and "5.2.2" in out.text, f"{out}\n{usage}"
        assert find_messages(host, second) == [], "mail for a full mailbox was stored"
    finally:
        host.run("doveadm expunge -u %s mailbox INBOX header subject %s && doveadm quota recalc -u %s",
                 TINY, filler, TINY)
