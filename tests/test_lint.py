"""The Ansible side passes the project's linters and Ansible's own syntax check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT_DIR

BIN = Path(sys.executable).parent


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT_DIR / "ansible.cfg"), NO_COLOR="1",
               PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", os.defpath)]))
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=PROJECT_DIR, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def test_roles_and_playbooks_exist() -> None:
    assert sorted(p.name for p in (PROJECT_DIR / "roles").iterdir() if p.is_dir())
    assert (PROJECT_DIR / "playbooks/site.yml").is_file()
    assert (PROJECT_DIR / "playbooks/render.yml").is_file()


def test_yamllint() -> None:
    # The project's .yamllint is picked up from the working directory.
    result = run_tool("yamllint", "--strict", "roles", "playbooks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile() -> None:
    result = run_tool("ansible-lint", "--profile", "production", "--nocolor", "roles", "playbooks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_site_playbook_syntax() -> None:
    result = run_tool("ansible-playbook", "--syntax-check", "playbooks/site.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_render_playbook_syntax() -> None:
    result = run_tool("ansible-playbook", "--syntax-check", "playbooks/render.yml")
    assert result.returncode == 0, result.stdout + result.stderr
