"""Spam and viruses are refused while the sender is still connected (5xx at the end of DATA), so the
sender learns of it and nothing is stored or queued."""

from __future__ import annotations

from mailprobe import (
    ALICE,
    eicar_message,
    find_messages,
    gtube_message,
    new_token,
    outside_sender,
    queued_from,
    smtp_transaction,
)


def assert_refused_and_gone(host, appliance, build) -> None:
    token = new_token()
    sender = outside_sender(token)
    out = smtp_transaction(appliance.ip, 25, sender, [ALICE], build(sender, ALICE, token))
    assert out.stage == "data" and 500 <= out.code < 600, str(out)
    assert find_messages(host, token) == [], "a refused message was stored"
    assert queued_from(host, sender) == [], "a refused message was queued"


def test_gtube_is_refused_at_data(host, appliance):
    assert_refused_and_gone(host, appliance, gtube_message)


def test_eicar_attachment_is_refused_at_data(host, appliance):
    assert_refused_and_gone(host, appliance, eicar_message)
