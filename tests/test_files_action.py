"""plugins/action/mailappliance_files.py against localhost over the local connection: a role's file list written in
one task, the loop-shaped results the handlers read, diffs in check mode, the preview's bytes, and no secret in any
output."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from conftest import PROJECT_DIR

BIN = Path(sys.executable).parent
SECRET = "hunter2-not-for-logs"
TEMPLATES = {
    "plain.j2": "host {{ inventory_hostname }}\n{{ item.dest }}\n",
    "secret.j2": "password = {{ probe_secret | oneline }}\n",
}
# What the roles' vars compute from the registered result to pick the handlers to run.
CHANGED_HANDLERS = "{{ outcome.results | selectattr('changed') | map(attribute='item.handlers') | flatten | unique }}"


def files(out: Path) -> list[dict[str, Any]]:
    return [
        {"src": "plain.j2", "dest": f"{out}/plain.conf", "handlers": ["Reload"]},
        {"src": "secret.j2", "dest": f"{out}/secret.conf", "mode": "0600", "secret": True, "handlers": ["Restart"]},
        {"src": "plain.j2", "dest": f"{out}/validated.conf", "validate": "grep -q host %s", "handlers": ["Reload"]},
    ]


def write_role(root: Path, tasks: list[dict[str, Any]]) -> Path:
    """A role `probe` with TEMPLATES and `tasks`, and a play on localhost that runs it; returns the play."""
    role = root / "roles/probe"
    (role / "templates").mkdir(parents=True, exist_ok=True)
    for name, text in TEMPLATES.items():
        (role / "templates" / name).write_text(text)
    (role / "tasks").mkdir(exist_ok=True)
    (role / "tasks/main.yml").write_text(yaml.safe_dump(tasks, sort_keys=False))
    play = root / "probe.yml"
    play.write_text(yaml.safe_dump([{
        "name": "Probe", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}", "probe_secret": SECRET},
        "roles": ["probe"],
    }], sort_keys=False))
    return play


def write_task(out: Path, **extra: Any) -> dict[str, Any]:
    return {"name": "Write the probe files", "register": "outcome", **extra, "mailappliance_files": {
        "files": files(out), "owner": str(os.getuid()), "group": str(os.getgid()), "mode": "0644"}}


def run_play(root: Path, play: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT_DIR / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(root / "roles"),
               ANSIBLE_NOCOLOR="1", PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", os.defpath)]))
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(play), *extra], cwd=PROJECT_DIR,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def test_writes_changed_files_and_reports_them_like_a_loop(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    play = write_role(tmp_path, [
        write_task(out),
        {"name": "Every file was new", "ansible.builtin.assert": {"that": [
            "outcome is changed", f"{CHANGED_HANDLERS[3:-3]} == ['Reload', 'Restart']",
            "outcome.results | map(attribute='item.dest') | list == " + repr([f["dest"] for f in files(out)])]}},
        write_task(out, name="Write them again"),
        {"name": "Nothing changed the second time", "ansible.builtin.assert": {"that": [
            "outcome is not changed", f"{CHANGED_HANDLERS[3:-3]} == []"]}},
        {"name": "Render the preview of the same list", "mailappliance_preview": {"files": files(out)},
         "vars": {"mailappliance__preview_dir": str(tmp_path / "preview")}},
    ])
    result = run_play(tmp_path, play)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "plain.conf").read_text() == f"host localhost\n{out}/plain.conf\n"
    assert (out / "secret.conf").read_text() == f"password = {SECRET}\n"
    assert stat.S_IMODE((out / "secret.conf").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "plain.conf").stat().st_mode) == 0o644
    # One source of truth: what is deployed is byte for byte what the offline preview shows.
    for path in out.iterdir():
        assert (tmp_path / "preview/localhost" / str(path).lstrip("/")).read_bytes() == path.read_bytes(), path
    assert SECRET not in result.stdout + result.stderr


def test_check_diff_shows_changes_but_no_secret_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    play = write_role(tmp_path, [write_task(out)])
    assert run_play(tmp_path, play).returncode == 0
    (out / "plain.conf").write_text("tampered\n")
    (out / "secret.conf").write_text(f"password = {SECRET}-old\n")
    (out / "validated.conf").chmod(0o600)

    result = run_play(tmp_path, play, "--check", "--diff", "-v")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "-tampered" in output and f"+{out}/plain.conf" in output
    assert '-    "mode": "0600",' in output and '+    "mode": "0644",' in output
    assert "Diff output has been hidden because the file holds secrets" in output
    assert SECRET not in output
    assert (out / "plain.conf").read_text() == "tampered\n"
    assert stat.S_IMODE((out / "validated.conf").stat().st_mode) == 0o600


def test_secret_render_failure_hides_the_message(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    play = write_role(tmp_path, [write_task(out)])
    # The oneline guard refuses a value with a line break and quotes it in its message.
    result = run_play(tmp_path, play, "-e", f"probe_secret='{SECRET}\\nsecond line'")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{out}/secret.conf: rendering secret.j2 failed; the message is hidden" in output
    assert SECRET not in output
    assert list(out.iterdir()) == []
