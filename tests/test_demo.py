"""`mailappliance demo`, with Podman, Ansible and the mail check replaced by recorders (the real run is slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clirunner import assert_clean_failure, run_cli
from mailappliance import exit_codes, mailcheck, podman, runner
from mailappliance.commands import demo
from mailappliance.errors import UserError


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []


@pytest.fixture
def fakes(site_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    record = recorder.calls.append
    monkeypatch.setattr(podman, "image_exists", lambda image=podman.BASE_IMAGE: True)
    monkeypatch.setattr(podman, "container_state", lambda name: None)
    monkeypatch.setattr(podman, "create_systemd_container", lambda name, hostname: record(("create", name, hostname)))
    monkeypatch.setattr(podman, "wait_until_booted", lambda name: record(("booted", name)))
    monkeypatch.setattr(podman, "ip_address", lambda name: "10.88.0.9")

    def run_playbook(playbook: Path, inventory: Path, vault_password_file: Path, work_dir: Path, **options):
        record(("playbook", playbook.name, inventory, options.get("extravars")))
        return runner.PlaybookRun("successful", 0, {"processed": {demo.HOSTNAME: 1}})

    monkeypatch.setattr(runner, "run_playbook", run_playbook)

    def send_and_receive(address: str, recipient: str, password: str, log_hint: str) -> str:
        record(("mail", address, recipient, password))
        return "mailappliance demo 1234"

    monkeypatch.setattr(mailcheck, "send_and_receive", send_and_receive)
    return recorder


def test_demo_creates_site_container_deploys_and_checks_mail(fakes: Recorder, site_dir: Path) -> None:
    result = run_cli("demo")
    assert result.exit_code == 0, result.output
    hosts = yaml.safe_load((site_dir / "inventories/demo/hosts.yml").read_text())
    assert hosts["all"]["children"]["mailappliance"]["hosts"] == {demo.HOSTNAME: {
        "ansible_host": demo.CONTAINER, "ansible_user": "root", "ansible_connection": "mailappliance_podman"}}
    password = next(line.split()[1] for line in result.stdout.splitlines()
                    if line.startswith("  postmaster@demo.test"))
    preview = str((site_dir / "build/demo/preview").resolve())
    published = str((site_dir / "inventories/demo/published").resolve())
    assert fakes.calls == [
        ("create", demo.CONTAINER, demo.HOSTNAME),
        ("booted", demo.CONTAINER),
        ("playbook", "render.yml", Path("inventories/demo/hosts.yml"), {"mailappliance__preview_dir": preview}),
        ("playbook", "site.yml", Path("inventories/demo/hosts.yml"), {"mailappliance__published_dir": published}),
        ("mail", "10.88.0.9", "postmaster@demo.test", password),
    ]
    assert "podman exec -it mailappliance-demo bash" in result.stdout
    assert "inventories/demo/site.yml" in result.stdout


def test_demo_reuses_its_site_and_running_container(fakes: Recorder, site_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli("demo").exit_code == 0
    site_file = (site_dir / "inventories/demo/site.yml").read_bytes()
    monkeypatch.setattr(podman, "container_state", lambda name: "running")
    fakes.calls.clear()
    result = run_cli("demo")
    assert result.exit_code == 0, result.output
    assert "password" not in result.stdout.split("The demo appliance works")[0].lower()
    assert (site_dir / "inventories/demo/site.yml").read_bytes() == site_file
    assert [call[0] for call in fakes.calls] == ["booted", "playbook", "playbook", "mail"]


def test_missing_base_image_is_one_clear_error(fakes: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(podman, "image_exists", lambda image=podman.BASE_IMAGE: False)
    errors = assert_clean_failure(run_cli("demo"), exit_codes.EXIT_CODE_USER_ERROR)
    assert errors == ["the base image localhost/mailappliance-debian12:latest does not exist; build it with "
                      "`scripts/build-base-image` (as root, needs debootstrap)"]


def test_failed_mail_check_has_its_own_exit_code(fakes: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(address: str, recipient: str, password: str, log_hint: str) -> str:
        raise UserError(f"SMTP {address}:25 refused the test message: 554 no; {log_hint}",
                        exit_code=exit_codes.EXIT_CODE_MAIL_CHECK_FAILED)

    monkeypatch.setattr(mailcheck, "send_and_receive", refuse)
    errors = assert_clean_failure(run_cli("demo"), exit_codes.EXIT_CODE_MAIL_CHECK_FAILED)
    assert errors == ["SMTP 10.88.0.9:25 refused the test message: 554 no; see the mail log with "
                      "`podman exec mailappliance-demo journalctl -n 100 --no-pager`"]


def test_demo_site_must_point_at_the_demo_container(fakes: Recorder, site_dir: Path) -> None:
    assert run_cli("demo").exit_code == 0
    site_file = site_dir / "inventories/demo/site.yml"
    site_file.write_text(site_file.read_text().replace("connection: podman", "user: root"))
    errors = assert_clean_failure(run_cli("demo"), exit_codes.EXIT_CODE_USER_ERROR)
    assert errors == ["inventories/demo/site.yml: host: must be {connection: podman, address: mailappliance-demo} "
                      "for the demo; fix it, or delete the file to start from a fresh demo site"]
