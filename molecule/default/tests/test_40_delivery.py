"""Mail from outside reaches the right Maildir and its owner can read it over IMAPS; aliases, the
catch-all and the role addresses (postmaster@, abuse@) go where the site says."""

from __future__ import annotations

import imaplib
import uuid

import pytest

from mailprobe import (
    ADMIN,
    ALICE,
    CATCHALL,
    build_message,
    find_messages,
    imap_fetch_by_subject,
    insecure_context,
    mailbox_dir,
    new_token,
    outside_sender,
    smtp_transaction,
    wait_for_messages,
)


def deliver_from_outside(appliance, recipient: str, token: str) -> None:
    sender = outside_sender(token)
    out = smtp_transaction(appliance.ip, 25, sender, [recipient], build_message(sender, recipient, token))
    assert out.accepted, f"mail to {recipient}: {out}"


def test_inbound_mail_lands_in_maildir_and_is_readable_over_imaps(host, appliance):
    token = new_token()
    deliver_from_outside(appliance, ALICE, token)
    files = wait_for_messages(host, token, mailbox_dir(ALICE))
    assert len(files) == 1, f"expected one message in {mailbox_dir(ALICE)}, found {files}"
    fetched = imap_fetch_by_subject(appliance.ip, ALICE, appliance.password(ALICE), token)
    assert fetched is not None, f"IMAP SEARCH SUBJECT {token} found nothing in {ALICE}'s INBOX"
    assert f"Subject: {token}".encode() in fetched


def test_imaps_refuses_a_wrong_password(appliance):
    with imaplib.IMAP4_SSL(appliance.ip, 993, ssl_context=insecure_context(), timeout=30) as imap:
        with pytest.raises(imaplib.IMAP4.error) as refused:
            imap.login(ALICE, "not-" + appliance.password(ALICE))
    assert "AUTHENTICATIONFAILED" in str(refused.value), str(refused.value)


@pytest.mark.parametrize(
    "local_part, mailbox",
    [("sales", ALICE), (None, CATCHALL)],
    ids=["alias sales@ to alice", "catch-all to catchall"],
)
def test_alias_and_catch_all_deliver(host, appliance, local_part, mailbox):
    recipient = f"{local_part or 'random-' + uuid.uuid4().hex[:12]}@alpha.test"
    token = new_token()
    deliver_from_outside(appliance, recipient, token)
    files = wait_for_messages(host, token, mailbox_dir(mailbox))
    assert (
        len(files) == 1
    ), f"mail to {recipient} not in {mailbox_dir(mailbox)}; found anywhere: {find_messages(host, token)}"


@pytest.mark.parametrize(
    "recipient", ["postmaster@alpha.test", "abuse@alpha.test", "postmaster@beta.test", "abuse@beta.test"]
)
def test_role_addresses_reach_the_admin_contact(host, appliance, recipient):
    token = new_token()
    deliver_from_outside(appliance, recipient, token)
    files = wait_for_messages(host, token, mailbox_dir(ADMIN))
    assert len(files) == 1, f"mail to {recipient} not in {mailbox_dir(ADMIN)}; found anywhere: {find_messages(host, token)}"
