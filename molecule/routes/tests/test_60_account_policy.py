"""What a sending account may do: its daily quota ends with a 4xx at the end of DATA and nothing more leaves, a
wrong password is 535, and a sender address the account does not own is 553."""

from __future__ import annotations

import time

import pytest

from mailprobe import build_message, new_token

from conftest import ORDERS_PORT, ORDERS_SENDER, OUTSIDE_DOMAIN, STAFF, TINY_SENDER
from routeprobe import stored_everywhere, wait_for_stored

TINY_DAILY_QUOTA = 3


def test_an_account_over_its_daily_quota_gets_4xx_and_nothing_leaves(appliance, carriers, figures):
    everywhere = list(carriers.values())
    tokens = [new_token() for _ in range(TINY_DAILY_QUOTA + 1)]
    outcomes = []
    for index, token in enumerate(tokens):
        recipient = f"quota{index}@{OUTSIDE_DOMAIN}"
        outcomes.append(appliance.submit(ORDERS_PORT, "tiny", TINY_SENDER, recipient,
                                         build_message(TINY_SENDER, recipient, token)))
    accepted = [token for token, out in zip(tokens, outcomes) if out.accepted]
    refused = [(token, out) for token, out in zip(tokens, outcomes) if not out.accepted]
    report = [f"message {index + 1}: {out}" for index, out in enumerate(outcomes)]

    # The counters survive restarts and count per UTC day, so a second verify on the same day starts with the quota
    # used up: then every attempt is refused, and still none of them may leave.
    assert accepted == tokens[:len(accepted)], "a message was accepted after one was refused:\n" + "\n".join(report)
    if len(accepted) < TINY_DAILY_QUOTA:
        figures.report("tiny's quota", [f"{len(accepted)} accepted: part of today's quota was used before this run",
                                        *report])
    last = outcomes[-1]
    assert (last.stage, last.code) == ("data", 451) and "4.7.1" in last.text, (
        "the message over the quota was not refused with 451 4.7.1 at the end of DATA:\n" + "\n".join(report))

    for token in accepted:
        assert wait_for_stored(everywhere, token), f"accepted message {token} never reached a carrier"
    time.sleep(5)
    leaked = [s for token, _ in refused for s in stored_everywhere(everywhere, token)]
    assert not leaked, f"refused messages reached a carrier: {leaked}"


def test_a_wrong_password_is_refused_with_535(appliance):
    token = new_token()
    recipient = f"someone@{OUTSIDE_DOMAIN}"
    out = appliance.submit(ORDERS_PORT, "shop", ORDERS_SENDER, recipient,
                           build_message(ORDERS_SENDER, recipient, token), password="not-" + appliance.password("shop"))
    assert (out.stage, out.code) == ("auth", 535), str(out)


@pytest.mark.parametrize("sender", [STAFF, "foo@routes.test", "orders@elsewhere.test"],
                         ids=["a staff mailbox", "an unknown address", "another domain"])
def test_an_account_may_not_send_as_an_address_it_does_not_own(appliance, sender):
    token = new_token()
    recipient = f"someone@{OUTSIDE_DOMAIN}"
    out = appliance.submit(ORDERS_PORT, "shop", sender, recipient, build_message(sender, recipient, token))
    # Postfix evaluates sender restrictions at RCPT unless told otherwise (smtpd_delay_reject).
    assert out.stage in ("mail", "rcpt") and out.code == 553, str(out)
