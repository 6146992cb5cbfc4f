"""playbooks/audit.yml is read-only by construction, and its syntax is valid (lint runs in test_lint.py)."""

from __future__ import annotations

from typing import Any

import yaml

from conftest import PROJECT_DIR
from test_lint import run_tool

PLAYBOOK = PROJECT_DIR / "playbooks" / "audit.yml"
READ_ONLY_MODULES = {"ansible.builtin.find", "ansible.builtin.service_facts"}
COMMAND_MODULES = {"ansible.builtin.command", "ansible.builtin.shell"}
SECRET_FILES = ("/etc/dovecot/users", "/etc/rspamd/local.d/worker-controller.inc", "key.pem", "*.key")


def tasks() -> list[dict[str, Any]]:
    plays = yaml.safe_load(PLAYBOOK.read_text())
    return [task for play in plays for task in play["tasks"]]


def module(task: dict[str, Any]) -> str:
    return next(key for key in task if key.startswith("ansible."))


def test_every_task_only_reads_the_host() -> None:
    for task in tasks():
        name, mod = task["name"], module(task)
        if mod in COMMAND_MODULES:
            assert task.get("changed_when") is False and task.get("check_mode") is False, name
        elif mod == "ansible.builtin.copy":
            # The one write: the evidence file, on the controller.
            assert task.get("delegate_to") == "localhost" and task.get("become") is False, name
            assert "mailappliance__audit_evidence_dir" in task[mod]["dest"], name
        else:
            assert mod in READ_ONLY_MODULES, f"{name}: {mod} is not known to be read-only"


def test_secret_files_are_never_read_out() -> None:
    for task in tasks():
        assert module(task) != "ansible.builtin.slurp", task["name"]
    users = next(t for t in tasks() if "/etc/dovecot/users" in str(t.get("ansible.builtin.shell", "")))
    # Only the {SCHEME} prefix of each hash leaves the host.
    assert "cut -d ':' -f 2" in users["ansible.builtin.shell"]["cmd"]
    assert "s/^{\\([A-Za-z0-9.-]*\\)}.*/\\1/p" in users["ansible.builtin.shell"]["cmd"]
    dkim = next(t for t in tasks() if t["name"] == "Measure DKIM key sizes")
    assert "-pubout" in dkim["ansible.builtin.shell"]["cmd"]


def test_audit_playbook_syntax() -> None:
    result = run_tool("ansible-playbook", "--syntax-check", "playbooks/audit.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_clamav_databases_are_found_by_the_site_models_extensions() -> None:
    # The extension list exists once, in the site model; the playbook gets it from the CLI.
    text = (PROJECT_DIR / "playbooks" / "audit.yml").read_text()
    assert "mailappliance__audit_clamav_database_extensions" in text and "use_regex: true" in text
    assert '"*.hdb"' not in text
