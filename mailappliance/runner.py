"""Run a playbook through ansible-runner, printing one progress line per task and host as it happens.

Only task names, hosts, statuses and failure messages are printed: never the environment, and results
of no_log tasks arrive already censored by Ansible. ansible-runner's private data folder (which holds
the command line and environment) is temporary and removed after the run.
"""

from __future__ import annotations

import difflib
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import click

from mailappliance import exit_codes
from mailappliance.errors import UserError
from mailappliance.project import PROJECT_DIR, ansible_config, containers_conf

Echo = Callable[..., None]

_STAT_KEYS = ("ok", "changed", "dark", "failures", "skipped", "rescued", "ignored")
_STAT_LABELS = {"dark": "unreachable", "failures": "failed"}
# How Ansible starts the error and warning messages it prints outside task results.
_MESSAGE_MARKERS = ("[ERROR]", "[WARNING]", "ERROR!", "WARNING:")
# Lines of a failed command's stderr worth showing; the rest is usually a repeat or a stack trace.
_STDERR_LINES = 20


@dataclass
class PlaybookRun:
    """What a run ended with: ansible-runner's status, ansible-playbook's exit code and the recap."""

    status: str
    rc: int
    stats: dict[str, dict[str, int]] | None = None
    failed_tasks: list[str] = field(default_factory=list)

    def hosts_with(self, key: str) -> list[str]:
        return sorted(host for host, count in (self.stats or {}).get(key, {}).items() if count)


def run_playbook(
    playbook: Path,
    inventory: Path,
    vault_password_file: Path,
    work_dir: Path,
    *,
    check: bool = False,
    diff: bool = False,
    limit: str | None = None,
    tags: str | None = None,
    extravars: Mapping[str, Any] | None = None,
    project_dir: Path = PROJECT_DIR,
    echo: Echo = click.echo,
) -> PlaybookRun:
    """Run `playbook` against `inventory`; ansible-runner's scratch data goes to a temporary folder in `work_dir`."""
    cmdline = ["--vault-password-file", str(vault_password_file.resolve())]
    if check:
        cmdline.append("--check")
    if diff:
        cmdline.append("--diff")
    if tags:
        cmdline += ["--tags", tags]
    envvars = {
        "ANSIBLE_CONFIG": str(ansible_config(project_dir)),
        # ansible-playbook must come from the same installation as this package, activated or not.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    conf = containers_conf(project_dir)
    if conf is not None and "CONTAINERS_CONF" not in os.environ:
        # The podman connection plugin must see the same runtime settings the container was created with.
        envvars["CONTAINERS_CONF"] = str(conf)
    printer = _EventPrinter(echo, show_diff=diff)
    work_dir.mkdir(parents=True, exist_ok=True)
    private_data_dir = tempfile.mkdtemp(prefix="runner-", dir=work_dir)
    try:
        result = ansible_runner.run(
            private_data_dir=private_data_dir,
            project_dir=str(project_dir),
            playbook=str(playbook.resolve()),
            inventory=str(inventory.resolve()),
            cmdline=shlex.join(cmdline),
            limit=limit,
            extravars=dict(extravars or {}),
            envvars=envvars,
            event_handler=printer.handle,
            suppress_env_files=True,
            quiet=True,
        )
    finally:
        shutil.rmtree(private_data_dir, ignore_errors=True)
    run = PlaybookRun(status=result.status, rc=result.rc, stats=printer.stats, failed_tasks=printer.failed_tasks)
    if run.stats is not None:
        printer.recap(run.stats)
    return run


def raise_for_failure(run: PlaybookRun, action: str) -> None:
    """Turn an unsuccessful run into a UserError with a named exit code; `action` says what was attempted."""
    if run.status == "successful" and run.rc == 0:
        return
    if run.status == "canceled":
        raise UserError(f"{action} was interrupted", exit_code=exit_codes.EXIT_CODE_INTERRUPTED)
    unreachable = run.hosts_with("dark")
    failed = run.hosts_with("failures")
    if unreachable:
        raise UserError(
            f"{action} failed: cannot reach {', '.join(unreachable)}; check host: in the site file and that the "
            "host is up and accepts Ansible's connection (SSH as host.user, or a running podman container)",
            exit_code=exit_codes.EXIT_CODE_HOST_UNREACHABLE,
        )
    if failed:
        tasks = "; ".join(run.failed_tasks) or "see the task output above"
        raise UserError(f"{action} failed on {', '.join(failed)}: {tasks}",
                        exit_code=exit_codes.EXIT_CODE_PLAYBOOK_FAILED)
    raise UserError(f"{action} failed: Ansible stopped before running any task (exit code {run.rc}); "
                    "see the messages above", exit_code=exit_codes.EXIT_CODE_ANSIBLE_ERROR)


class _EventPrinter:
    """Turns ansible-runner events into progress lines; keeps no event on disk."""

    def __init__(self, echo: Echo, show_diff: bool) -> None:
        self.echo = echo
        self.show_diff = show_diff
        self.tasks: dict[str, str] = {}
        # (task, host) pairs with a changed loop item: when an item is no_log, the task's own result
        # arrives censored and may not say that it changed.
        self.changed_items: set[tuple[str, str]] = set()
        self.stats: dict[str, dict[str, int]] | None = None
        self.failed_tasks: list[str] = []
        self.started = False
        self.in_message = False

    def handle(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_start":
            self.started = True
        elif kind == "playbook_on_play_start":
            self.echo(f"PLAY [{data.get('name') or data.get('play', '')}]")
        elif kind == "playbook_on_task_start":
            # ansible-runner reports handlers as task starts flagged is_conditional (the Ansible 1 way).
            prefix = "RUNNING HANDLER" if data.get("is_conditional") else "TASK"
            self.tasks[data.get("task_uuid", "")] = f"{prefix} [{_task_name(data)}]"
        elif kind == "runner_item_on_ok" and (data.get("res") or {}).get("changed"):
            self.changed_items.add((data.get("task_uuid", ""), data.get("host", "")))
        elif kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "runner_on_skipped",
                      "runner_on_async_failed"):
            self.result(kind, data)
        elif kind == "playbook_on_stats":
            self.stats = {key: dict(data.get(key) or {}) for key in (*_STAT_KEYS, "processed")}
        if kind in ("verbose", "warning", "system_warning", "error"):
            self.display_text(event.get("stdout") or "")
        else:
            self.in_message = False
        # Returning False keeps ansible-runner from writing the event, results included, to disk.
        return False

    def display_text(self, text: str) -> None:
        """Show Ansible's own errors and warnings, which arrive as plain text outside task results.

        Before the playbook starts everything is shown (syntax errors, a missing role); during the run only
        error and warning blocks, since extra callbacks from ansible.cfg (task timings) print here too.
        """
        text = text.rstrip()
        if text.lstrip().startswith(_MESSAGE_MARKERS):
            self.in_message = True
        if text and (not self.started or self.in_message):
            self.echo(text, err=True)

    def result(self, kind: str, data: dict[str, Any]) -> None:
        res = data.get("res") or {}
        host = data.get("host", "?")
        label = self.tasks.get(data.get("task_uuid", ""), f"TASK [{_task_name(data)}]")
        if kind == "runner_on_ok":
            changed = res.get("changed") or (data.get("task_uuid", ""), host) in self.changed_items
            status = "changed" if changed else "ok"
        elif kind == "runner_on_skipped":
            status = "skipped"
        elif kind == "runner_on_unreachable":
            status = "unreachable"
        else:
            status = "failed (ignored)" if data.get("ignore_errors") else "failed"
        self.echo(f"{label} {status} {host}")
        if status in ("failed", "unreachable"):
            message = _failure_message(res)
            self.failed_tasks.append(f"[{_task_name(data)}] {message.splitlines()[0]}")
            for line in message.splitlines():
                self.echo(f"    {line}", err=True)
        if self.show_diff and status in ("changed", "ok"):
            for line in _diff_lines(res):
                self.echo(f"    {line}")

    def recap(self, stats: dict[str, dict[str, int]]) -> None:
        hosts = sorted({host for key in _STAT_KEYS for host in stats.get(key, {})} | set(stats.get("processed", {})))
        self.echo("PLAY RECAP")
        for host in hosts:
            counts = " ".join(f"{_STAT_LABELS.get(key, key)}={stats.get(key, {}).get(host, 0)}" for key in _STAT_KEYS)
            self.echo(f"{host} {counts}")


def _task_name(data: dict[str, Any]) -> str:
    task = data.get("task") or data.get("name") or data.get("task_action", "")
    role = data.get("role")
    return f"{role} : {task}" if role else str(task)


def _failure_message(res: dict[str, Any]) -> str:
    """The useful part of a failed result: its message, failed loop items, and the start of stderr."""
    if "censored" in res:
        return str(res["censored"])
    lines: list[str] = []
    if res.get("msg"):
        lines.append(str(res["msg"]).strip())
    for item in res.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            label = item.get("_ansible_item_label", item.get("item", ""))
            lines.append(f"item {label}: {str(item.get('censored') or item.get('msg') or 'failed').strip()}")
    stderr = str(res.get("stderr") or "").strip()
    if stderr:
        lines.extend(stderr.splitlines()[:_STDERR_LINES])
    return "\n".join(lines) or "failed without a message"


def _diff_lines(res: dict[str, Any]) -> list[str]:
    diffs = res.get("diff") or []
    if isinstance(diffs, dict):
        diffs = [diffs]
    lines: list[str] = []
    for diff in diffs:
        if not isinstance(diff, dict):
            continue
        if diff.get("prepared"):
            lines.extend(str(diff["prepared"]).splitlines())
            continue
        before, after = diff.get("before"), diff.get("after")
        if isinstance(before, str) and isinstance(after, str) and before != after:
            lines.extend(difflib.unified_diff(
                before.splitlines(), after.splitlines(),
                fromfile=str(diff.get("before_header", "before")), tofile=str(diff.get("after_header", "after")),
                lineterm="",
            ))
    return lines
