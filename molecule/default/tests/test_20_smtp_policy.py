"""Who may hand what to the appliance over SMTP: no open relay, no unknown recipients, passwords only
over TLS and only on the submission ports, and authenticated users send only as themselves."""

from __future__ import annotations

from mailprobe import (
    ADMIN,
    ALICE,
    BOB,
    build_message,
    ehlo_keywords,
    maildir,
    new_token,
    outside_sender,
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
    assert wait_for_messages(host, token, maildir(BOB)), f"message from {sender} never reached {BOB}"
