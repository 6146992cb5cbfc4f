"""Password guessing: a burst of wrong logins gets the source address blocked on every login port, across
connections and protocols; the owner keeps logging in from elsewhere; an allowed monitoring address is
never blocked; the block expires. The fixture site sets login_protection (5 failures, 60 s ban, one
allowed address)."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from mailprobe import ALICE, Blocked, is_blocked, login, wait_until

# The fixture's login_protection (../site/site.yml).
MAX_FAILURES = 5
BAN_TIME = 60.0
# How long fail2ban may take to read the journal and load the rule.
DETECTION = 30.0
PROTOCOLS = ("imap", "smtp", "pop3", "sieve")


def guess(ip: str, protocol: str, source: str, attempts: int) -> list[bool | str]:
    """`attempts` wrong passwords at once, each on its own connection."""

    def one(n: int) -> bool | str:
        try:
            return login(ip, protocol, ALICE, f"wrong-{n}", source)
        except Blocked:
            return "blocked"
        except OSError as err:  # the ban may land while a connection is open
            return f"dropped: {err!r}"

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        return list(pool.map(one, range(attempts)))


@pytest.fixture(scope="module")
def attack(appliance, source_addresses, log_allowances):
    """One attacker address per protocol plus the allowed monitoring address, all guessing at once."""
    attackers = dict(zip(PROTOCOLS, source_addresses.extra[:len(PROTOCOLS)]))
    # The fixture site allows exactly this address (login_protection.allow).
    monitor = source_addresses.extra[len(PROTOCOLS)]
    with log_allowances.expect(r"authentication failed|auth failed|SASL", "wrong passwords on purpose"):
        with ThreadPoolExecutor(max_workers=len(PROTOCOLS) + 1) as pool:
            jobs = {protocol: pool.submit(guess, appliance.ip, protocol, address, MAX_FAILURES + 2)
                    for protocol, address in attackers.items()}
            jobs["monitor"] = pool.submit(guess, appliance.ip, "imap", monitor, MAX_FAILURES + 2)
            results = {name: job.result() for name, job in jobs.items()}
    assert not any(results["monitor"]), f"a wrong password was accepted: {results}"
    return attackers, monitor


def test_guessing_gets_the_source_blocked_on_every_login_port(appliance, attack):
    attackers, _ = attack
    # All four attackers in one test, so every check lands well inside the ban, whatever the order.
    for protocol, source in attackers.items():
        blocked = wait_until(lambda: is_blocked(appliance.ip, protocol, source), DETECTION)
        assert blocked, f"{source} guessed {MAX_FAILURES + 2} passwords over {protocol} and can still connect"
    for protocol, source in attackers.items():
        # One ban closes every port where a password is typed, not just the one that was attacked.
        still_open = [other for other in PROTOCOLS if not is_blocked(appliance.ip, other, source)]
        assert not still_open, f"{source} is blocked after guessing over {protocol} but can still reach {still_open}"


def test_port_25_stays_open_to_a_blocked_address(appliance, attack):
    attackers, _ = attack
    source = attackers["imap"]
    assert wait_until(lambda: is_blocked(appliance.ip, "imap", source), DETECTION)
    with socket.create_connection((appliance.ip, 25), timeout=10, source_address=(source, 0)) as conn:
        assert conn.recv(64).startswith(b"220"), "port 25 refused a blocked address; other mail servers share addresses"


@pytest.mark.parametrize("protocol", ["imap", "smtp"])
def test_owner_logs_in_from_another_address_during_the_attack(appliance, attack, source_addresses, protocol):
    attackers, _ = attack
    assert wait_until(lambda: is_blocked(appliance.ip, protocol, attackers[protocol]), DETECTION)
    assert login(appliance.ip, protocol, ALICE, appliance.password(ALICE), source_addresses.primary), (
        f"the owner's correct password over {protocol} from {source_addresses.primary} was refused during the attack"
    )


def test_allowed_monitoring_address_is_never_blocked(appliance, attack):
    attackers, monitor = attack
    # By the time the attackers are blocked, the monitor's failures have been read as well.
    assert wait_until(lambda: is_blocked(appliance.ip, "imap", attackers["imap"]), DETECTION)
    assert not is_blocked(appliance.ip, "imap", monitor), f"the allowed address {monitor} was blocked"
    assert login(appliance.ip, "imap", ALICE, appliance.password(ALICE), monitor)


def test_the_block_expires(appliance, attack):
    attackers, _ = attack
    source = attackers["imap"]
    assert wait_until(lambda: is_blocked(appliance.ip, "imap", source), DETECTION)
    free = wait_until(lambda: not is_blocked(appliance.ip, "imap", source), BAN_TIME + DETECTION, interval=2.0)
    assert free, f"{source} is still blocked {BAN_TIME + DETECTION:g} s after the ban began (ban time {BAN_TIME:g} s)"
    assert login(appliance.ip, "imap", ALICE, appliance.password(ALICE), source)
