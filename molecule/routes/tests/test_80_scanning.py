"""Outbound mail of every channel passes Rspamd and ClamAV: a virus is refused with 5xx at the end of DATA while
the sender is still connected, and nothing of it reaches a carrier."""

from __future__ import annotations

import time

import pytest

from mailprobe import eicar_message, new_token

from conftest import ORDERS_PORT, ORDERS_SENDER, OUTSIDE_DOMAIN, STAFF
from routeprobe import stored_everywhere


@pytest.mark.parametrize(
    "port, login, sender",
    [(587, STAFF, STAFF), (ORDERS_PORT, "shop", ORDERS_SENDER)],
    ids=["staff", "orders"],
)
def test_an_eicar_attachment_is_refused_at_data(appliance, carriers, port, login, sender):
    token = new_token()
    recipient = f"someone@{OUTSIDE_DOMAIN}"
    out = appliance.submit(port, login, sender, recipient, eicar_message(sender, recipient, token))
    assert out.stage == "data" and 500 <= out.code < 600, str(out)
    time.sleep(3)
    assert not stored_everywhere(carriers.values(), token), "a refused virus reached a carrier"
