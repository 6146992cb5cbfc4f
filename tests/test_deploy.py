"""`mailappliance deploy SITE`: options reach the runner, and failures map to named exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from clirunner import assert_clean_failure, run_cli
from mailappliance import exit_codes, runner
from mailappliance.project import PROJECT_DIR

HOST = "mail.alpha.test"


def fake_runner(monkeypatch: pytest.MonkeyPatch, run: runner.PlaybookRun) -> list[dict]:
    calls: list[dict] = []

    def run_playbook(playbook: Path, inventory: Path, vault_password_file: Path, work_dir: Path, **options):
        calls.append({"playbook": playbook, "inventory": inventory, "vault_password_file": vault_password_file,
                      "work_dir": work_dir, **options})
        return run

    monkeypatch.setattr(runner, "run_playbook", run_playbook)
    return calls


def stats(**counts: int) -> dict[str, dict[str, int]]:
    base = {key: {} for key in ("ok", "changed", "dark", "failures", "skipped", "rescued", "ignored")}
    base.update({key: {HOST: value} for key, value in counts.items()})
    base["processed"] = {HOST: 1}
    return base


def test_deploy_runs_site_playbook_with_the_options(full_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_runner(monkeypatch, runner.PlaybookRun("successful", 0, stats(ok=5)))
    result = run_cli("deploy", "site.yml", "--check", "--diff", "--limit", HOST)
    assert result.exit_code == 0, result.output
    assert calls == [{
        "playbook": PROJECT_DIR / "playbooks/site.yml",
        "inventory": Path("inventories/molecule/hosts.yml"),
        "vault_password_file": Path("inventories/molecule/.vault-pass"),
        "work_dir": Path("build/molecule"),
        "check": True, "diff": True, "limit": HOST,
        "extravars": {"mailappliance__published_dir": str(Path("inventories/molecule/published").resolve())},
    }]
    assert result.stdout.splitlines()[-1] == f"deploy --check of molecule finished on {HOST}"
    assert Path("inventories/molecule/hosts.yml").is_file()


def test_deploy_tells_the_roles_where_to_publish_for_dns(full_site: Path, site_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_runner(monkeypatch, runner.PlaybookRun("successful", 0, stats(ok=5)))
    result = run_cli("--inventory-root", str(site_dir / "customers"), "deploy", "site.yml")
    assert result.exit_code == 0, result.output
    # Absolute, because the roles' fetch tasks resolve relative paths against the playbook folder.
    assert calls[0]["extravars"] == {"mailappliance__published_dir": str(site_dir / "customers/molecule/published")}


@pytest.mark.parametrize(("run", "exit_code", "message"), [
    pytest.param(
        runner.PlaybookRun("failed", 2, stats(failures=1), ["[postfix : Configure main.cf] boom"]),
        exit_codes.EXIT_CODE_PLAYBOOK_FAILED,
        f"deploy failed on {HOST}: [postfix : Configure main.cf] boom",
        id="task-failed",
    ),
    pytest.param(
        runner.PlaybookRun("failed", 4, stats(dark=1)),
        exit_codes.EXIT_CODE_HOST_UNREACHABLE,
        f"deploy failed: cannot reach {HOST}; check host: in the site file and that the host is up and accepts "
        "Ansible's connection (SSH as host.user, or a running podman container)",
        id="unreachable",
    ),
    pytest.param(
        runner.PlaybookRun("failed", 4, None),
        exit_codes.EXIT_CODE_ANSIBLE_ERROR,
        "deploy failed: Ansible stopped before running any task (exit code 4); see the messages above",
        id="ansible-error",
    ),
    pytest.param(
        runner.PlaybookRun("canceled", 254, None),
        exit_codes.EXIT_CODE_INTERRUPTED,
        "deploy was interrupted",
        id="interrupted",
    ),
])
def test_failures_have_named_exit_codes(full_site: Path, monkeypatch: pytest.MonkeyPatch,
                                        run: runner.PlaybookRun, exit_code: int, message: str) -> None:
    fake_runner(monkeypatch, run)
    assert assert_clean_failure(run_cli("deploy", "site.yml"), exit_code) == [message]
