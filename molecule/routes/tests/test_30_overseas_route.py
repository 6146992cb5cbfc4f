"""Mail for a domain on the overseas list (file:overseas.txt) leaves through the overseas carrier, logged in with
the relay password from the vault, from the staff channel and from the orders channel alike."""

from __future__ import annotations

import pytest

from mailprobe import build_message, new_token

from conftest import ORDERS_PORT, ORDERS_SENDER, OVERSEAS_DOMAINS, STAFF
from routeprobe import wait_for_stored


@pytest.mark.parametrize(
    "port, login, sender, domain",
    [(587, STAFF, STAFF, OVERSEAS_DOMAINS[0]), (ORDERS_PORT, "shop", ORDERS_SENDER, OVERSEAS_DOMAINS[1])],
    ids=["staff", "orders"],
)
def test_overseas_domains_leave_through_the_overseas_carrier(appliance, carriers, port, login, sender, domain):
    token = new_token()
    recipient = f"someone@{domain}"
    out = appliance.submit(port, login, sender, recipient, build_message(sender, recipient, token))
    assert out.accepted, str(out)
    stored = wait_for_stored(list(carriers.values()), token)
    assert [s.carrier for s in stored] == ["overseas"], f"expected the message once, at overseas: {stored}"
    # The carrier's own Received line: ESMTPSA is Postfix's word for a session that authenticated (RFC 3848).
    received = stored[0].received
    assert "by overseas.carriers.test" in received and "ESMTPSA" in received, (
        f"the overseas carrier took the message without SMTP AUTH: Received: {received}")
