"""Failover without loss: with the primary carrier's Postfix stopped (connections refused), every message of the
orders channel reaches the fallback carrier, exactly once, counted by Message-ID across all carriers; once the
primary is back, new mail goes to it again. The timeline is printed."""

from __future__ import annotations

import time
import uuid

from mailprobe import build_message, wait_for_port

from conftest import ORDERS_PORT, ORDERS_SENDER, OUTSIDE_DOMAIN
from routeprobe import by_message_id, message_id, wait_for_stored

MESSAGES = 50
# Postfix tries the fallback in the same delivery attempt; minutes would mean it waited for a queue run.
FAILOVER_TIMEOUT = 300.0


def clock(when: float, zero: float) -> str:
    return f"{time.strftime('%H:%M:%S', time.localtime(when))} (+{when - zero:.1f} s)"


def test_mail_moves_to_the_fallback_and_back(appliance, carriers, figures):
    primary, fallback = carriers["isp1"], carriers["isp2"]
    everywhere = list(carriers.values())
    run = uuid.uuid4().hex[:10]
    marker = f"failover-{run}-"
    tokens = [f"{marker}{index:03d}" for index in range(MESSAGES)]

    primary.systemctl("stop")
    stopped = time.time()
    try:
        with appliance.session(ORDERS_PORT, "shop") as session:
            for index, token in enumerate(tokens):
                recipient = f"failover{index:03d}@{OUTSIDE_DOMAIN}"
                out = session.send(ORDERS_SENDER, recipient, build_message(ORDERS_SENDER, recipient, token))
                assert out.accepted, f"{token}: {out}"
        submitted = time.time()
        stored = wait_for_stored(everywhere, marker, count=MESSAGES, timeout=FAILOVER_TIMEOUT)
        # Anything still on its way would show up as a duplicate now.
        time.sleep(5)
        stored = wait_for_stored(everywhere, marker, count=MESSAGES, timeout=0)
    finally:
        primary.systemctl("start")
    restarted = time.time()

    at_fallback = sorted(s.mtime for s in stored if s.carrier == fallback.name)
    lines = [
        f"{primary.name} ({primary.container}) Postfix stopped at {clock(stopped, stopped)}",
        f"{MESSAGES} messages from shop submitted by {clock(submitted, stopped)}",
    ]
    if at_fallback:
        lines.append(f"{fallback.name}: first at {clock(at_fallback[0], stopped)}, last at {clock(at_fallback[-1], stopped)}"
                     f", {len(at_fallback)} messages")
    lines.append(f"{primary.name} started again at {clock(restarted, stopped)}")

    found = by_message_id(stored)
    twice = {mid: [s.carrier for s in entries] for mid, entries in found.items() if len(entries) > 1}
    missing = [token for token in tokens if message_id(token) not in found]
    elsewhere = [s for s in stored if s.carrier != fallback.name]
    try:
        assert not missing, f"{len(missing)} of {MESSAGES} never arrived: {missing[:10]}"
        assert not twice, f"{len(twice)} arrived more than once: {list(twice.items())[:10]}"
        assert not elsewhere, f"{len(elsewhere)} arrived elsewhere than at {fallback.name}: {elsewhere[:5]}"

        # Back to the primary: new mail goes to it as soon as it accepts connections again.
        assert wait_for_port(primary.ip, 587, timeout=60), f"{primary.container}:587 does not accept connections"
        token = f"{marker}back"
        recipient = f"failback@{OUTSIDE_DOMAIN}"
        sent = time.time()
        out = appliance.submit(ORDERS_PORT, "shop", ORDERS_SENDER, recipient,
                               build_message(ORDERS_SENDER, recipient, token))
        assert out.accepted, str(out)
        back = wait_for_stored(everywhere, token)
        if back:
            lines.append(f"after the restart: one more message sent at {clock(sent, stopped)}, stored at "
                         f"{back[0].carrier} at {clock(back[0].mtime, stopped)}")
        assert [s.carrier for s in back] == [primary.name], f"the message after the restart went to: {back}"
    finally:
        figures.report("failover timeline (primary carrier's Postfix stopped)", lines)
