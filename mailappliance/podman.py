"""The demo's container: a systemd Podman container of the project's Debian 12 base image."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

from mailappliance.errors import UserError
from mailappliance.project import containers_conf

BASE_IMAGE = "localhost/mailappliance-debian12:latest"


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    conf = containers_conf()
    if conf is not None:
        env.setdefault("CONTAINERS_CONF", str(conf))
    return env


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    if shutil.which("podman") is None:
        raise UserError("podman is not installed; install it (apt-get install podman) to run the demo")
    try:
        result = subprocess.run(["podman", *args], capture_output=True, text=True, env=_environment(),
                                timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise UserError(f"`podman {' '.join(args)}` did not finish within {timeout:g} seconds; "
                        "check `podman ps -a` and the podman service") from None
    if check and result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
        reason = detail[-1] if detail else f"exit code {result.returncode}"
        raise UserError(f"`podman {' '.join(args)}` failed: {reason}")
    return result


def image_exists(image: str = BASE_IMAGE) -> bool:
    return podman("image", "exists", image, check=False).returncode == 0


def container_state(name: str) -> str | None:
    """The container's state ("running", "exited", ...), or None if there is no such container."""
    result = podman("container", "inspect", "--format", "{{.State.Status}}", name, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def remove(name: str) -> None:
    podman("rm", "--force", "--time", "10", name)


def create_systemd_container(name: str, hostname: str, image: str = BASE_IMAGE) -> None:
    # systemd mode gives the container what systemd as PID 1 needs (tmpfs /run, a writable cgroup).
    # NET_ADMIN: fail2ban blocks password guessers with nftables inside the container, as on a real host.
    podman("run", "--detach", "--name", name, "--hostname", hostname, "--systemd", "always", "--cap-add", "NET_ADMIN",
           image, "/sbin/init")


def start(name: str) -> None:
    podman("start", name)


def wait_until_booted(name: str, timeout: float = 120) -> None:
    """Wait for systemd in the container to finish booting ("running", or "degraded" with a failed unit)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = podman("exec", name, "systemctl", "is-system-running", check=False, timeout=30).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(1)
    raise UserError(f"systemd in container {name} did not finish booting within {timeout:g} seconds "
                    f"(state {state or 'unknown'}); see `podman logs {name}`")


def ip_address(name: str) -> str:
    """The container's address on its Podman network, reachable from this host."""
    result = podman("container", "inspect", name)
    try:
        settings = json.loads(result.stdout)[0]["NetworkSettings"]
    except (ValueError, LookupError):
        raise UserError(f"cannot read the network settings of container {name}; see `podman inspect {name}`") from None
    addresses = [settings.get("IPAddress")] + [n.get("IPAddress") for n in (settings.get("Networks") or {}).values()]
    for address in addresses:
        if address:
            return str(address)
    raise UserError(f"container {name} has no IP address; it must run on a Podman bridge network, "
                    "not --network host")
