"""The runner against a real ansible-runner and ansible-playbook, on a throwaway local project."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailappliance import exit_codes, runner
from mailappliance.errors import UserError

# A play on the inventory's one host, run on the controller itself.
LOCAL_PLAY = """\
  hosts: mailappliance
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
"""
PLAYBOOK = "- name: Exercise the runner\n" + LOCAL_PLAY + """\
    - name: Report
      ansible.builtin.debug:
        msg: hello
    - name: Write a file
      ansible.builtin.copy:
        content: "{{ marker }}\\n"
        dest: "{{ out }}"
        mode: "0644"
      notify: Reload something
    - name: Use a secret
      ansible.builtin.command: "echo {{ secret }}"
      no_log: true
      changed_when: false
      failed_when: fail_secret | default(false) | bool
    - name: Break
      ansible.builtin.command: /bin/false
      when: fail | default(false) | bool
  handlers:
    - name: Reload something
      ansible.builtin.debug:
        msg: reloaded
"""
SECRET = "s3cret-Value-That-Must-Not-Show"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks/test.yml").write_text(PLAYBOOK)
    (tmp_path / "ansible.cfg").write_text("[defaults]\ninterpreter_python = auto_silent\n")
    (tmp_path / "hosts.yml").write_text("all:\n  children:\n    mailappliance:\n      hosts:\n        box.test:\n")
    (tmp_path / ".vault-pass").write_text("unused\n")
    return tmp_path


def run(project: Path, lines: list[str], **options) -> runner.PlaybookRun:
    def echo(message: str = "", err: bool = False) -> None:
        lines.append(message)

    extravars = {"marker": "one", "out": str(project / "out.txt"), "secret": SECRET, **options.pop("extravars", {})}
    return runner.run_playbook(project / "playbooks/test.yml", project / "hosts.yml", project / ".vault-pass",
                               project / "build", extravars=extravars, project_dir=project, echo=echo, **options)


def test_progress_lines_and_stats(project: Path) -> None:
    lines: list[str] = []
    result = run(project, lines, diff=True)
    assert (result.status, result.rc) == ("successful", 0)
    assert lines[:3] == [
        "PLAY [Exercise the runner]", "TASK [Report] ok box.test", "TASK [Write a file] changed box.test"]
    assert "    +one" in lines
    assert "TASK [Use a secret] ok box.test" in lines
    assert "TASK [Break] skipped box.test" in lines
    assert "RUNNING HANDLER [Reload something] ok box.test" in lines
    assert lines[-2:] == ["PLAY RECAP", "box.test ok=4 changed=1 unreachable=0 failed=0 skipped=1 rescued=0 ignored=0"]
    assert result.stats is not None and result.stats["changed"] == {"box.test": 1}
    runner.raise_for_failure(result, "test")
    # ansible-runner's scratch folder (command line, environment) does not outlive the run.
    assert list((project / "build").iterdir()) == []


def test_check_mode_changes_nothing(project: Path) -> None:
    run(project, [], check=True)
    assert not (project / "out.txt").exists()


def test_failure_names_the_task_and_exit_code(project: Path) -> None:
    lines: list[str] = []
    result = run(project, lines, extravars={"fail": True})
    assert "TASK [Break] failed box.test" in lines
    with pytest.raises(UserError) as caught:
        runner.raise_for_failure(result, "deploy")
    assert caught.value.exit_code == exit_codes.EXIT_CODE_PLAYBOOK_FAILED
    assert caught.value.lines == ("deploy failed on box.test: [Break] non-zero return code",)


def test_no_log_results_stay_hidden(project: Path) -> None:
    lines: list[str] = []
    result = run(project, lines, extravars={"fail_secret": True})
    assert "TASK [Use a secret] failed box.test" in lines
    assert not any(SECRET in line for line in lines)
    assert SECRET not in " ".join(result.failed_tasks)


def test_ansible_errors_before_the_run_are_shown(project: Path) -> None:
    (project / "playbooks/test.yml").write_text("- name: Broken\n  hosts: all\n  tasks:\n    - no.such.module: {}\n")
    lines: list[str] = []
    result = run(project, lines)
    assert result.stats is None
    assert any("no.such.module" in line for line in lines)
    with pytest.raises(UserError) as caught:
        runner.raise_for_failure(result, "deploy")
    assert caught.value.exit_code == exit_codes.EXIT_CODE_ANSIBLE_ERROR


LOOP_PLAYBOOK = "- name: Loop with a secret item\n" + LOCAL_PLAY + """\
    - name: Write files, one of them secret
      ansible.builtin.copy:
        content: "{{ item.content }}\\n"
        dest: "{{ out }}.{{ item.name }}"
        mode: "0600"
      loop:
        - {name: plain, content: hello}
        - {name: hidden, content: "{{ secret }}", secret: true}
      loop_control:
        label: "{{ item.name }}"
      no_log: "{{ item.secret | default(false) }}"
"""


def test_a_loop_with_a_secret_item_still_reports_its_change(project: Path) -> None:
    (project / "playbooks/test.yml").write_text(LOOP_PLAYBOOK)
    lines: list[str] = []
    result = run(project, lines)
    assert "TASK [Write files, one of them secret] changed box.test" in lines, lines
    assert result.stats is not None and result.stats["changed"] == {"box.test": 1}
    assert not any(SECRET in line for line in lines)
