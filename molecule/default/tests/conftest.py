"""Fixtures for the appliance tests: where the container is, the mailbox passwords from the vaulted
inventory, a record of log noise the tests cause on purpose, and the services' journal on failure."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml
from ansible.constants import DEFAULT_VAULT_ID_MATCH
from ansible.parsing.vault import VaultLib, VaultSecret

import mailprobe

# Taken at import, i.e. at collection, before any test talks to the appliance: the log check looks at
# what happened from here on.
SESSION_START = time.time()

PROJECT_DIR = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or Path(__file__).resolve().parents[3])
INVENTORY_DIR = Path(
    os.environ.get("MAILAPPLIANCE_INVENTORY_DIR") or PROJECT_DIR / "build" / "molecule" / "inventories" / "molecule"
)
# The molecule platform name, which the podman driver also gives the container.
CONTAINER = os.environ.get("MAILAPPLIANCE_CONTAINER", "mail.alpha.test")
JOURNAL_COMMAND = "journalctl -u postfix@- -u dovecot -u rspamd -u clamav-daemon --no-pager -n 200"
PUBLIC_PORTS = (25, 465, 587, 993)
# How long after a deliberate fault its log lines may still arrive (journald and syslog are asynchronous).
LOG_LATENCY = 5.0


@dataclass(frozen=True)
class Appliance:
    """The container as an outside client sees it."""

    ip: str
    passwords: dict[str, str]

    def password(self, address: str) -> str:
        assert address in self.passwords, f"no password for {address} in the vault; mailboxes: {sorted(self.passwords)}"
        return self.passwords[address]

    def submit(self, login: str, sender: str, recipient: str, token: str) -> mailprobe.SmtpOutcome:
        """Submit a message on 587 after STARTTLS, logged in as `login`, from `sender` to `recipient`."""
        return mailprobe.smtp_transaction(
            self.ip, 587, sender, [recipient], mailprobe.build_message(sender, recipient, token),
            starttls=True, login=(login, self.password(login)),
        )


@dataclass(frozen=True)
class LogAllowance:
    start: float
    end: float
    pattern: re.Pattern[str]
    reason: str

    def covers(self, when: float, line: str) -> bool:
        return self.start <= when <= self.end and bool(self.pattern.search(line))


@dataclass
class LogAllowances:
    """Warnings a test provokes on purpose (a stopped service, an outdated TLS client). Each one is
    excused only inside the time window of that test and only for lines matching its pattern."""

    entries: list[LogAllowance] = field(default_factory=list)

    @contextmanager
    def expect(self, pattern: str, reason: str) -> Iterator[None]:
        start = time.time()
        try:
            yield
        finally:
            self.entries.append(LogAllowance(start, time.time() + LOG_LATENCY, re.compile(pattern), reason))

    def excuse(self, when: float, line: str) -> LogAllowance | None:
        return next((entry for entry in self.entries if entry.covers(when, line)), None)


def podman_env() -> dict[str, str]:
    """The environment for podman: CONTAINERS_CONF as the infra helper sets it, else the project's own."""
    env = dict(os.environ)
    project_conf = PROJECT_DIR / ".config" / "containers" / "containers.conf"
    if "CONTAINERS_CONF" not in env and project_conf.is_file():
        env["CONTAINERS_CONF"] = str(project_conf)
    return env


def container_ip(name: str) -> str:
    out = subprocess.run(
        ["podman", "inspect", "--type", "container", name],
        capture_output=True,
        text=True,
        env=podman_env(),
        check=False,
    )
    assert out.returncode == 0, f"podman inspect {name} failed: {out.stderr.strip()}"
    settings = json.loads(out.stdout)[0]["NetworkSettings"]
    addresses = [net.get("IPAddress") for net in (settings.get("Networks") or {}).values()]
    addresses.append(settings.get("IPAddress"))
    found = [a for a in addresses if a]
    assert found, f"container {name} has no IP address on a podman network: {settings}"
    return found[0]


def vault_secrets(inventory_dir: Path) -> dict[str, Any]:
    """The inventory's vaulted variables, decrypted as Ansible would."""
    secret = VaultSecret((inventory_dir / ".vault-pass").read_bytes().strip())
    vault = VaultLib([(DEFAULT_VAULT_ID_MATCH, secret)])
    return dict(yaml.safe_load(vault.decrypt((inventory_dir / "group_vars" / "all" / "vault.yml").read_bytes())))


def mailbox_passwords(inventory_dir: Path) -> dict[str, str]:
    """The clear mailbox passwords from the inventory's vault."""
    return dict(vault_secrets(inventory_dir)["mailappliance__mailbox_passwords"])


@pytest.fixture(scope="session")
def secrets() -> dict[str, Any]:
    return vault_secrets(INVENTORY_DIR)


@pytest.fixture(scope="session")
def appliance() -> Appliance:
    ip = container_ip(CONTAINER)
    closed = [port for port in PUBLIC_PORTS if not mailprobe.wait_for_port(ip, port)]
    assert not closed, f"ports {closed} on {ip} do not accept connections"
    return Appliance(ip=ip, passwords=mailbox_passwords(INVENTORY_DIR))


@pytest.fixture(scope="session")
def log_allowances() -> LogAllowances:
    return LogAllowances()


@pytest.fixture(scope="session")
def session_start() -> float:
    return SESSION_START


_journal_hosts: dict[str, Any] = {}


def _any_host(config: pytest.Config) -> Any:
    """A testinfra host for the container when the failing test did not ask for one itself."""
    if "host" not in _journal_hosts:
        # The same choice testinfra makes for the `host` fixture: --hosts first, then the inventory.
        if config.option.hosts:
            _journal_hosts["host"] = testinfra.get_host(config.option.hosts.split(",")[0])
        elif config.option.ansible_inventory:
            _journal_hosts["host"] = testinfra.get_host(
                f"ansible://{CONTAINER}", ansible_inventory=config.option.ansible_inventory
            )
        else:
            _journal_hosts["host"] = testinfra.get_host(f"podman://{CONTAINER}")
    return _journal_hosts["host"]


def _journal(item: pytest.Item) -> str:
    try:
        host = getattr(item, "funcargs", {}).get("host") or _any_host(item.config)
        out = host.run(JOURNAL_COMMAND)
        return out.stdout + out.stderr
    except Exception as err:  # the report must survive a container that is gone
        return f"could not read the journal: {err!r}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        report.sections.append((f"journal of the mail services: {JOURNAL_COMMAND}", _journal(item)))


@dataclass(frozen=True)
class SourceAddresses:
    """Addresses of the test host on the container's network besides its own, so a test can act as
    several outside clients (an attacker, a monitoring host) at once."""

    primary: str
    extra: tuple[str, ...]


@pytest.fixture(scope="session")
def source_addresses(appliance: Appliance) -> Iterator[SourceAddresses]:
    route = json.loads(subprocess.run(["ip", "-j", "route", "get", appliance.ip], capture_output=True, text=True,
                                      check=True).stdout)[0]
    device, primary = route["dev"], route["prefsrc"]
    interface = json.loads(subprocess.run(["ip", "-j", "addr", "show", "dev", device], capture_output=True, text=True,
                                          check=True).stdout)[0]
    prefix = next(info["prefixlen"] for info in interface["addr_info"] if info["local"] == primary)
    # Free addresses of the podman network next to the appliance's (10.88.77.25 gives .201 to .205).
    base = ipaddress.ip_address(appliance.ip)
    extra = tuple(str(base + offset) for offset in range(176, 181))
    added = []
    try:
        for address in extra:
            subprocess.run(["ip", "addr", "add", f"{address}/{prefix}", "dev", device], check=True)
            added.append(address)
        yield SourceAddresses(primary=primary, extra=extra)
    finally:
        for address in added:
            subprocess.run(["ip", "addr", "del", f"{address}/{prefix}", "dev", device], check=False)
