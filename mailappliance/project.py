"""Where the Ansible side of the project (ansible.cfg, playbooks/, roles/, templates/) lives on this machine."""

from __future__ import annotations

from pathlib import Path

from mailappliance.errors import UserError

# The package runs from a checkout (pip install -e): the playbooks and roles sit beside it.
PROJECT_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_DIR / "templates"


def ansible_config(project_dir: Path = PROJECT_DIR) -> Path:
    config = project_dir / "ansible.cfg"
    if not config.is_file():
        raise UserError(f"{config}: no such file; run mailappliance from a checkout of the project "
                        "installed with `pip install -e .`")
    return config


def playbook(name: str, project_dir: Path = PROJECT_DIR) -> Path:
    path = project_dir / "playbooks" / name
    if not path.is_file():
        raise UserError(f"{path}: no such playbook; the checkout is incomplete, restore playbooks/ from git")
    return path


def containers_conf(project_dir: Path = PROJECT_DIR) -> Path | None:
    """The project's podman settings (runc, ulimits for systemd containers), if this checkout has them."""
    path = project_dir / ".config" / "containers" / "containers.conf"
    return path if path.is_file() else None
