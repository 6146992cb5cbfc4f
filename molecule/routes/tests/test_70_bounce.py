"""A carrier that refuses a recipient with 5xx causes a bounce, not a failover, and the bounce can be tied to the
account that sent the message: Postfix's non-delivery notification goes to the message's VERP Return-Path, which
names the account and the recipient, and stays on the appliance.

The check follows Postfix's own log, because that is where an operator finds it whatever the role does with the
notification afterwards (a mailbox, a postmaster, a processor): the refused delivery (status=bounced, the
carrier's 550), the notification it caused ("sender non-delivery notification: <queue id>"), and that
notification's recipient and delivery. Where it finally landed is printed, not asserted."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from mailprobe import build_message, find_messages, wait_until

from conftest import ORDERS_PORT, ORDERS_SENDER, OUTSIDE_DOMAIN, SITE_DOMAIN
from routeprobe import QUEUE_ID, postfix_log, queue_line, stored_everywhere

BOUNCE_TIMEOUT = 120.0


def test_a_5xx_from_the_carrier_bounces_to_the_sending_account(host, appliance, carriers, figures):
    tag = uuid.uuid4().hex[:10]
    token = f"bounce-{tag}"
    # The carriers answer 550 for reject5xx@ and reject5xx+<anything>@ (../prepare.yml).
    recipient = f"reject5xx+{tag}@{OUTSIDE_DOMAIN}"
    since = time.time()
    out = appliance.submit(ORDERS_PORT, "shop", ORDERS_SENDER, recipient, build_message(ORDERS_SENDER, recipient, token))
    assert out.accepted, str(out)

    refused = re.escape(f"to=<{recipient}>")
    found: dict[str, Any] = {}

    def followed() -> bool:
        lines = postfix_log(host, since)
        found["bounced"] = queue_line(lines, rf"^(?P<qid>{QUEUE_ID}): {refused}, relay=(?P<relay>\S+), .*"
                                             r"status=bounced \((?P<why>.*)\)")
        if found["bounced"]:
            qid = found["bounced"]["qid"]
            found["notice"] = queue_line(lines, rf"^{qid}: sender non-delivery notification: (?P<dsn>{QUEUE_ID})")
            found["elsewhere"] = queue_line(lines, rf"^{qid}: {refused}, relay=(?!{re.escape(found['bounced']['relay'])})")
        if found.get("notice"):
            dsn = found["notice"]["dsn"]
            found["delivery"] = queue_line(lines, rf"^{dsn}: to=<(?P<to>[^>]*)>,.* relay=(?P<relay>\S+),.*"
                                                  r"status=(?P<status>sent|bounced|undeliverable)")
        ids = [tag] + [m[name] for name, m in (("qid", found.get("bounced")), ("dsn", found.get("notice"))) if m]
        found["lines"] = [str(line) for line in lines if any(i in line.text for i in ids)]
        return bool(found.get("delivery"))

    wait_until(followed, BOUNCE_TIMEOUT, interval=2.0)
    trail = "\n".join(found.get("lines") or [])
    landed = find_messages(host, tag)
    figures.report("bounce of a 5xx from the carrier", [
        *(found.get("lines") or ["(no log line names the message)"]),
        f"the notification is stored on the appliance in: {landed or 'no mailbox'}",
    ])

    bounced = found.get("bounced")
    assert bounced, f"no status=bounced for {recipient} in the mail log:\n{trail}"
    assert bounced["relay"].startswith(carriers["isp1"].container), f"refused by {bounced['relay']}, not isp1"
    assert "550" in bounced["why"], bounced["why"]
    assert not found.get("elsewhere"), f"a 5xx moved the message to another carrier: {found['elsewhere'][0]}"
    assert not stored_everywhere(carriers.values(), token), "a carrier stored the refused message"

    assert found.get("notice"), f"the bounce made no non-delivery notification:\n{trail}"
    delivery = found.get("delivery")
    assert delivery, f"the non-delivery notification {found['notice']['dsn']} was not delivered:\n{trail}"
    to = delivery["to"]
    local, _, domain = to.rpartition("@")
    assert domain == SITE_DOMAIN, f"the notification went to {to}, outside the channel's bounce domain {SITE_DOMAIN}"
    assert "shop" in local and tag in local, f"the notification's recipient {to} does not name the account and {recipient}"
    assert delivery["status"] == "sent", f"the notification was not delivered: {delivery[0]}"
    carrier_hosts = [carrier.container for carrier in carriers.values()]
    assert not any(delivery["relay"].startswith(name) for name in carrier_hosts), (
        f"the notification left the appliance through a carrier: {delivery[0]}")
