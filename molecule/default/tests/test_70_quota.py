"""A full mailbox refuses new mail while the sender is connected: Postfix asks the quota policy at RCPT, so
nothing is accepted only to bounce later. The policy answers from the usage file Dovecot keeps the quota in
and hands anything but a message that fits to Dovecot's quota-status, so the refusal is Dovecot's, with or
without that file.

Runs after the delivery tests because it fills tiny@beta.test; it empties it again afterwards."""

from __future__ import annotations

import uuid

from mailprobe import (
    TINY,
    VMAIL_ROOT,
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


def usage_file(address: str) -> str:
    local, domain = address.split("@")
    return f"{VMAIL_ROOT}/{domain}/{local}/quota-usage"


def stored_bytes(host, address: str) -> int:
    """Bytes in use by the usage file (dict-file format: key line, value line)."""
    lines = host.file(usage_file(address)).content_string.split("\n")
    return int(lines[lines.index("priv/quota/storage") + 1])


def send(appliance, token: str, **kwargs):
    sender = outside_sender(token)
    message = build_message(sender, TINY, token)
    return smtp_transaction(appliance.ip, 25, sender, [TINY], message, mail_options=[f"SIZE={len(message)}"], **kwargs)


def test_over_quota_mailbox_refuses_mail_with_552(host, appliance):
    first = new_token()
    out = send(appliance, first)
    assert out.accepted, f"mail to an empty {TINY}: {out}"
    assert wait_for_messages(host, first, mailbox_dir(TINY)), f"first message never reached {mailbox_dir(TINY)}"
    # Dovecot wrote the mailbox's usage after that delivery, for the vmail user only.
    usage = host.file(usage_file(TINY))
    assert usage.exists and usage.user == "vmail" and usage.mode == 0o600, usage_file(TINY)
    assert 0 < stored_bytes(host, TINY) < FILLER_BYTES

    # The filler goes in through doveadm save with the quota switched off for that one command, then the quota
    # is counted again, as if the mailbox had filled up over time; the count goes to the usage file.
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
        quota = host.run("doveadm quota get -u %s", TINY).stdout
        assert stored_bytes(host, TINY) > FILLER_BYTES, f"usage file not updated by the recount:\n{quota}"

        second = new_token()
        out = send(appliance, second)
        assert out.stage in ("rcpt", "data") and out.code == 552 and "5.2.2" in out.text, f"{out}\n{quota}"
        assert find_messages(host, second) == [], "mail for a full mailbox was stored"

        # Without the usage file (lost, or a mailbox from before it existed) the policy cannot tell; Dovecot's
        # quota-status counts the mailbox again and refuses.
        host.run("rm -f %s", usage_file(TINY))
        third = new_token()
        out = send(appliance, third)
        assert out.stage in ("rcpt", "data") and out.code == 552 and "5.2.2" in out.text, f"{out}\n{quota}"
        assert find_messages(host, third) == [], "mail for a full mailbox was stored"
    finally:
        host.run("doveadm expunge -u %s mailbox INBOX header subject %s && doveadm quota recalc -u %s",
                 TINY, filler, TINY)
    # The expunge and recount wrote the usage again, and the mailbox takes mail again.
    assert stored_bytes(host, TINY) < FILLER_BYTES
    fourth = new_token()
    assert send(appliance, fourth).accepted
    assert wait_for_messages(host, fourth, mailbox_dir(TINY))
