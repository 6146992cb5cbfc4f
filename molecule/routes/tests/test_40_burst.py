"""Staff mail keeps flowing while the orders channel takes a burst: thousands of messages from the shop account on
its own port, and meanwhile a staff message every half second on 587. Each staff message's time from acceptance
to its arrival at the carrier is printed (min, median, max); every staff message must arrive, and every burst
message exactly once. No figure is a pass/fail threshold: a slow machine prints slow figures."""

from __future__ import annotations

import os
import smtplib
import statistics
import threading
import time
import uuid

from mailprobe import build_message

from conftest import ORDERS_PORT, ORDERS_SENDER, OUTSIDE_DOMAIN, STAFF
from routeprobe import by_message_id, message_id, stored_everywhere

BURST = int(os.environ.get("ROUTES_BURST", "3000"))
BURST_CONNECTIONS = 6
STAFF_INTERVAL = 0.5
# Generous: the figures are the result, the timeout only stops a hung run.
DRAIN_TIMEOUT = float(os.environ.get("ROUTES_BURST_TIMEOUT", "900"))
# Waiting stops early when nothing new has arrived for this long.
STALL_TIMEOUT = 120.0


def test_staff_mail_flows_during_an_orders_burst(appliance, carriers, figures):
    run = uuid.uuid4().hex[:10]
    burst_marker, staff_marker = f"burst-{run}-", f"staffdrip-{run}-"
    burst_refused: list[str] = []
    burst_errors: list[str] = []
    burst_done = threading.Event()
    burst_times: dict[str, float] = {}

    def sender(worker: int) -> None:
        try:
            with appliance.session(ORDERS_PORT, "shop") as session:
                for index in range(worker, BURST, BURST_CONNECTIONS):
                    token = f"{burst_marker}{index:05d}"
                    recipient = f"customer{index:05d}@{OUTSIDE_DOMAIN}"
                    out = session.send(ORDERS_SENDER, recipient, build_message(ORDERS_SENDER, recipient, token))
                    if not out.accepted:
                        burst_refused.append(f"{token}: {out}")
        except (OSError, smtplib.SMTPException) as err:
            burst_errors.append(f"connection {worker}: {err!r}")

    def burst() -> None:
        burst_times["start"] = time.time()
        workers = [threading.Thread(target=sender, args=(n,)) for n in range(BURST_CONNECTIONS)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        burst_times["submitted"] = time.time()
        burst_done.set()

    burst_thread = threading.Thread(target=burst)
    burst_thread.start()
    staff_sent: dict[str, float] = {}
    staff_refused: list[str] = []
    index = 0
    # Staff messages from the start of the burst until all of it is submitted (at least ten of them).
    while not burst_done.is_set() or index < 10:
        token = f"{staff_marker}{index:04d}"
        recipient = f"colleague{index:04d}@{OUTSIDE_DOMAIN}"
        started = time.time()
        out = appliance.submit(587, STAFF, STAFF, recipient, build_message(STAFF, recipient, token))
        if out.accepted:
            staff_sent[message_id(token)] = time.time()
        else:
            staff_refused.append(f"{token}: {out}")
        index += 1
        time.sleep(max(0.0, STAFF_INTERVAL - (time.time() - started)))
    burst_thread.join()

    carrier_list = list(carriers.values())
    deadline = time.time() + DRAIN_TIMEOUT
    burst_expected = BURST - len(burst_refused) if not burst_errors else 0
    progress = (-1, -1)
    progress_at = time.time()
    while True:
        burst_stored = stored_everywhere(carrier_list, burst_marker)
        staff_stored = stored_everywhere(carrier_list, staff_marker)
        now = time.time()
        if (len(burst_stored), len(staff_stored)) != progress:
            progress, progress_at = (len(burst_stored), len(staff_stored)), now
        done = len(by_message_id(burst_stored)) >= burst_expected and len(by_message_id(staff_stored)) >= len(staff_sent)
        if done or now > deadline or now - progress_at > STALL_TIMEOUT:
            break
        time.sleep(2)

    staff_by_id = by_message_id(staff_stored)
    latencies = sorted(min(s.mtime for s in staff_by_id[mid]) - sent for mid, sent in staff_sent.items()
                       if mid in staff_by_id)
    burst_arrivals = sorted(s.mtime for s in burst_stored)
    submitted = burst_times["submitted"] - burst_times["start"]
    lines = [
        f"burst: {BURST} messages from shop on port {ORDERS_PORT} over {BURST_CONNECTIONS} connections, "
        f"submitted in {submitted:.1f} s ({BURST / submitted:.0f} msg/s), {len(burst_refused)} refused, "
        f"{len(burst_errors)} connections failed",
        f"burst: {len(by_message_id(burst_stored))} distinct messages at the carriers "
        f"({', '.join(f'{c.name} {sum(1 for s in burst_stored if s.carrier == c.name)}' for c in carrier_list)}), "
        + (f"last {burst_arrivals[-1] - burst_times['start']:.1f} s after the burst began" if burst_arrivals else ""),
        f"staff: {len(staff_sent)} messages on 587 every {STAFF_INTERVAL} s during the burst, "
        f"{len(staff_refused)} refused, {len(latencies)} arrived",
    ]
    if latencies:
        lines.append(f"staff latency, accepted -> stored at the carrier: min {latencies[0]:.2f} s, "
                     f"median {statistics.median(latencies):.2f} s, max {latencies[-1]:.2f} s")
    figures.report("staff latency during an orders burst", lines)

    assert not burst_errors, "burst connections failed:\n" + "\n".join(burst_errors)
    assert not staff_refused, "staff messages refused during the burst:\n" + "\n".join(staff_refused[:20])
    missing = sorted(set(staff_sent) - set(staff_by_id))
    assert not missing, f"{len(missing)} staff messages never arrived: {missing[:10]}"
    assert not burst_refused, f"{len(burst_refused)} burst messages refused:\n" + "\n".join(burst_refused[:20])
    burst_by_id = by_message_id(burst_stored)
    twice = {mid: [s.carrier for s in found] for mid, found in burst_by_id.items() if len(found) > 1}
    assert not twice, f"{len(twice)} burst messages arrived more than once: {list(twice.items())[:10]}"
    assert len(burst_by_id) == BURST, f"{BURST - len(burst_by_id)} of {BURST} burst messages did not arrive"
