"""Fixtures for the routes scenario: the appliance and its carriers as outside clients see them, the passwords of
the mailboxes and sending accounts from the vaulted inventory, figures printed as they are measured, and the
journals of the appliance and the carriers when a test fails.

The SMTP helpers are the default scenario's (../../default/tests/mailprobe.py), imported from there."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml
from ansible.constants import DEFAULT_VAULT_ID_MATCH
from ansible.parsing.vault import VaultLib, VaultSecret

# Appended, so that this folder's own conftest stays the one `from conftest import` finds.
sys.path.append(str(Path(__file__).resolve().parents[2] / "default" / "tests"))

import mailprobe  # noqa: E402
import routeprobe  # noqa: E402

PROJECT_DIR = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or Path(__file__).resolve().parents[3])
INVENTORY_DIR = Path(os.environ.get("MAILAPPLIANCE_INVENTORY_DIR")
                     or PROJECT_DIR / "build" / "molecule-routes" / "inventories" / "routes")
CONTAINER = os.environ.get("MAILAPPLIANCE_CONTAINER", "mail.routes.test")
ARTIFACTS = PROJECT_DIR / "build" / "test-artifacts" / "molecule-routes"
JOURNAL_COMMAND = ("journalctl -u 'postfix@*' -u dovecot -u rspamd -u clamav-daemon -u 'mailappliance-*' "
                   "--no-pager -n 200")

# Facts of the fixture site (../site/site.yml) that the tests rely on.
STAFF = "staff@routes.test"
SITE_DOMAIN = "routes.test"
ORDERS_PORT = 2587
ORDERS_SENDER = "orders@routes.test"
TINY_SENDER = "tiny@routes.test"
OUTSIDE_DOMAIN = "example.com"
# Matched by the file:overseas.txt route (*.jp, *.example.cn).
OVERSEAS_DOMAINS = ("shop.example.jp", "mail.example.cn")


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    project_conf = PROJECT_DIR / ".config" / "containers" / "containers.conf"
    if "CONTAINERS_CONF" not in env and project_conf.is_file():
        env["CONTAINERS_CONF"] = str(project_conf)
    return env


def container_ip(name: str) -> str:
    out = routeprobe.podman(["inspect", "--type", "container", name], podman_env())
    assert out.returncode == 0, f"podman inspect {name} failed: {out.stderr.strip()}"
    networks = json.loads(out.stdout)[0]["NetworkSettings"].get("Networks") or {}
    found = [net.get("IPAddress") for net in networks.values() if net.get("IPAddress")]
    assert found, f"container {name} has no address on a podman network"
    return found[0]


def vault_secrets(inventory_dir: Path) -> dict[str, Any]:
    """The inventory's vaulted variables, decrypted as Ansible would."""
    secret = VaultSecret((inventory_dir / ".vault-pass").read_bytes().strip())
    vault = VaultLib([(DEFAULT_VAULT_ID_MATCH, secret)])
    return dict(yaml.safe_load(vault.decrypt((inventory_dir / "group_vars" / "all" / "vault.yml").read_bytes())))


def site_vars(inventory_dir: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((inventory_dir / "group_vars" / "all" / "site.yml").read_text()))


@dataclass(frozen=True)
class Appliance:
    """The appliance as an outside client sees it, with the passwords of its mailboxes and sending accounts."""

    ip: str
    passwords: dict[str, str]

    def password(self, login: str) -> str:
        assert login in self.passwords, f"no password for {login} in the vault; logins: {sorted(self.passwords)}"
        return self.passwords[login]

    def submit(self, port: int, login: str, sender: str, recipient: str, message: bytes,
               password: str | None = None) -> mailprobe.SmtpOutcome:
        """One message on `port` after STARTTLS, logged in as `login` (with its own password unless given)."""
        return mailprobe.smtp_transaction(
            self.ip, port, sender, [recipient], message, starttls=True,
            login=(login, self.password(login) if password is None else password),
        )

    def session(self, port: int, login: str) -> routeprobe.Session:
        return routeprobe.Session(self.ip, port, login, self.password(login))


@pytest.fixture(scope="session")
def secrets() -> dict[str, Any]:
    return vault_secrets(INVENTORY_DIR)


@pytest.fixture(scope="session")
def appliance(secrets: dict[str, Any]) -> Appliance:
    ip = container_ip(CONTAINER)
    ports = (25, 587, ORDERS_PORT)
    closed = [port for port in ports if not mailprobe.wait_for_port(ip, port, timeout=60)]
    assert not closed, f"ports {closed} on {ip} do not accept connections"
    passwords = dict(secrets["mailappliance__mailbox_passwords"])
    passwords |= secrets.get("mailappliance__outbound_account_passwords") or {}
    return Appliance(ip=ip, passwords=passwords)


@pytest.fixture(scope="session")
def carriers() -> dict[str, routeprobe.Carrier]:
    """The site's relay carriers by name; each relay's host name is the name of the container that plays it."""
    env = podman_env()
    return {
        carrier["name"]: routeprobe.Carrier(carrier["name"], carrier["host"], container_ip(carrier["host"]), env)
        for carrier in site_vars(INVENTORY_DIR)["mailappliance__outbound_carriers"]
        if carrier["type"] == "relay"
    }


@pytest.fixture(scope="session")
def published_dir() -> Path:
    return INVENTORY_DIR / "published" / CONTAINER


class Figures:
    """Measured figures: printed as they come (past pytest's capture) and kept in build/test-artifacts/."""

    def __init__(self, config: pytest.Config) -> None:
        self.capture = config.pluginmanager.getplugin("capturemanager")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.path = ARTIFACTS / "figures.txt"

    def report(self, title: str, lines: list[str]) -> None:
        text = "\n".join([f"== {title} ({time.strftime('%Y-%m-%d %H:%M:%S %Z')})", *lines]) + "\n"
        with self.path.open("a") as stream:
            stream.write(text)
        if self.capture is not None:
            with self.capture.global_and_fixture_disabled():
                print("\n" + text, end="", flush=True)
        else:
            print(text)


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest) -> Figures:
    return Figures(request.config)


_hosts: dict[str, Any] = {}


def _appliance_host(config: pytest.Config) -> Any:
    if "host" not in _hosts:
        _hosts["host"] = testinfra.get_host(config.option.hosts.split(",")[0] if config.option.hosts
                                            else f"podman://{CONTAINER}")
    return _hosts["host"]


def _journals(item: pytest.Item) -> list[tuple[str, str]]:
    sections = []
    try:
        host = getattr(item, "funcargs", {}).get("host") or _appliance_host(item.config)
        out = host.run(JOURNAL_COMMAND)
        sections.append((f"journal of the appliance: {JOURNAL_COMMAND}", out.stdout + out.stderr))
    except Exception as err:  # the report must survive a container that is gone
        sections.append(("journal of the appliance", f"could not read it: {err!r}"))
    for carrier in (getattr(item, "funcargs", {}).get("carriers") or {}).values():
        try:
            sections.append((f"journal of carrier {carrier.name} ({carrier.container})", carrier.log()))
        except Exception as err:
            sections.append((f"journal of carrier {carrier.name}", f"could not read it: {err!r}"))
    return sections


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        report.sections.extend(_journals(item))
