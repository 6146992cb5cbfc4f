"""plugins/action/mailappliance_preview.py: the offline preview writes exactly what ansible.builtin.template writes
on a host, never contacts one, and keeps files marked secret out of its messages."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import yaml

from clirunner import run_cli
from conftest import PROJECT_DIR

BIN = Path(sys.executable).parent
HOST = "mail.alpha.test"

# Renders a role's file list both ways. It replaces tasks/preview.yml in each role of a copy of roles/, so the
# deployment play itself (playbooks/render.yml, --tags preview) runs it with the wiring of playbooks/site.yml.
# Each role is checked on its first and last file (rspamd's last one is the template it renders once per network
# module, naming each by `item`) and every file with a mode of its own (the secret ones): the template module
# takes about half a second a file.
BOTH_WAYS = """\
- name: Render both ways
  vars:
    all_files: "{{ lookup('ansible.builtin.vars', '_' ~ role_name ~ '__templates') }}"
    drift_files: "{{ (all_files[:1] + all_files[-1:] + (all_files | selectattr('mode', 'defined') | list)) | unique }}"
  block:
    - name: Render through the preview action
      mailappliance_preview:
        files: "{{ drift_files }}"
      delegate_to: localhost

    - name: Render through the template module
      ansible.builtin.template:
        src: "{{ item.src }}"
        dest: "{{ drift_out }}/module/{{ item.dest | replace('/', '%') }}"
        mode: "{{ item.mode | default('0644') }}"
      loop: "{{ drift_files }}"
      delegate_to: localhost
      become: false
"""


def preview_roles() -> list[str]:
    """The roles of playbooks/site.yml that write a preview, in its order."""
    play = yaml.safe_load((PROJECT_DIR / "playbooks/site.yml").read_text())[0]
    names = [entry["role"] for entry in play["roles"]]
    return [name for name in names if (PROJECT_DIR / "roles" / name / "tasks/preview.yml").is_file()]


def run_playbook(playbook: Path, inventory: Path, roles: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT_DIR / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(roles),
               ANSIBLE_NOCOLOR="1", PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", os.defpath)]))
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory / "hosts.yml"), "--vault-password-file",
         str(inventory / ".vault-pass"), str(playbook), *extra],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=600, check=False,
    )


def write_play(path: Path, tasks: list[dict]) -> Path:
    path.write_text(yaml.safe_dump([{"name": "Test", "hosts": "mailappliance", "gather_facts": False,
                                     "tasks": tasks}], sort_keys=False))
    return path


def inventory(site_dir: Path) -> Path:
    assert run_cli("render", "site.yml", "--no-preview").exit_code == 0
    return site_dir / "inventories/molecule"


def test_preview_equals_the_template_module(full_site: Path, site_dir: Path) -> None:
    """Files of every previewed role, byte for byte and with their mode."""
    roles = site_dir / "roles"
    shutil.copytree(PROJECT_DIR / "roles", roles)
    for role in preview_roles():
        (roles / role / "tasks/preview.yml").write_text(BOTH_WAYS)
    out = site_dir / "out"
    (out / "module").mkdir(parents=True)
    result = run_playbook(PROJECT_DIR / "playbooks/render.yml", inventory(site_dir), roles, "--tags", "preview",
                          "-e", f"drift_out={out}", "-e", f"mailappliance__preview_dir={out}/action")
    assert result.returncode == 0, result.stdout + result.stderr

    action_root = out / "action" / HOST
    previewed = sorted(path for path in action_root.rglob("*") if path.is_file())
    module_files = sorted((out / "module").iterdir())
    assert len(previewed) == len(module_files) >= 2 * len(preview_roles())
    for path in previewed:
        expected = out / "module" / ("/" + str(path.relative_to(action_root))).replace("/", "%")
        assert path.read_bytes() == expected.read_bytes(), f"{path} differs from the template module's output"
        assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(expected.stat().st_mode), path


def probe_role(site_dir: Path, templates: dict[str, str], files: list[dict], expect_written: list[str]) -> Path:
    """A role of one preview task (no delegate_to: the inventory's host is an unroutable address) and a play
    that runs it and checks which files it reports written; returns the play."""
    role = site_dir / "roles/probe"
    for name, text in templates.items():
        (role / "templates" / name).parent.mkdir(parents=True, exist_ok=True)
        (role / "templates" / name).write_text(text)
    (role / "tasks").mkdir(parents=True, exist_ok=True)
    (role / "tasks/preview.yml").write_text(yaml.safe_dump([
        {"name": "Preview", "mailappliance_preview": {"files": files}, "register": "outcome"},
        {"name": "Check", "ansible.builtin.assert": {"that": [f"outcome.written == {expect_written!r}",
                                                               f"outcome.changed == {bool(expect_written)}"]}},
    ], sort_keys=False))
    return write_play(site_dir / "probe.yml", [{
        "ansible.builtin.include_role": {"name": "probe", "tasks_from": "preview.yml"}}])


def test_preview_writes_each_entry_with_its_mode_and_never_contacts_the_host(site_dir: Path,
                                                                            full_site: Path) -> None:
    templates = {"etc/plain.j2": "host {{ inventory_hostname }}\n{{ item.dest }}\n"}
    files = [{"src": "etc/plain.j2", "dest": "/etc/deep/plain.conf"},
             {"src": "etc/plain.j2", "dest": "/etc/private.conf", "mode": "0600"}]
    preview = site_dir / "preview"
    hosts = inventory(site_dir)
    play = probe_role(site_dir, templates, files, ["/etc/deep/plain.conf", "/etc/private.conf"])
    first = run_playbook(play, hosts, site_dir / "roles", "-e", f"mailappliance__preview_dir={preview}")
    assert first.returncode == 0, first.stdout + first.stderr
    assert (preview / HOST / "etc/deep/plain.conf").read_text() == f"host {HOST}\n/etc/deep/plain.conf\n"
    assert stat.S_IMODE((preview / HOST / "etc/deep/plain.conf").stat().st_mode) == 0o644
    assert stat.S_IMODE((preview / HOST / "etc/private.conf").stat().st_mode) == 0o600
    assert stat.S_IMODE((preview / HOST / "etc/deep").stat().st_mode) == 0o755

    # Unchanged files are left alone and reported unchanged.
    play = probe_role(site_dir, templates, files, [])
    again = run_playbook(play, hosts, site_dir / "roles", "-e", f"mailappliance__preview_dir={preview}")
    assert again.returncode == 0, again.stdout + again.stderr


def test_secret_file_failure_hides_the_message(site_dir: Path, full_site: Path) -> None:
    """A template error may quote the value it refused, and in a secret file that value may be a password."""
    templates = {"users.j2": "{{ ('hunter2-secret' ~ '\\n') | oneline }}\n"}
    hosts = inventory(site_dir)
    for secret in (False, True):
        play = probe_role(site_dir, templates, [{"src": "users.j2", "dest": "/etc/users", "secret": secret}], [])
        result = run_playbook(play, hosts, site_dir / "roles", "-e", f"mailappliance__preview_dir={site_dir / 'p'}")
        assert result.returncode != 0
        output = result.stdout + result.stderr
        if secret:
            assert "/etc/users: rendering users.j2 failed; the message is hidden because the file holds secrets" \
                in output
            assert "hunter2" not in output
        else:
            assert "hunter2-secret" in output
    assert not (site_dir / "p" / HOST / "etc/users").exists()


def test_dest_outside_the_preview_is_refused(site_dir: Path, full_site: Path) -> None:
    play = probe_role(site_dir, {"x.j2": "x\n"}, [{"src": "x.j2", "dest": "/../../escaped"}], [])
    result = run_playbook(play, inventory(site_dir), site_dir / "roles", "-e",
                          f"mailappliance__preview_dir={site_dir / 'p'}")
    assert result.returncode != 0
    assert "/../../escaped: leaves the preview folder" in result.stdout
    assert not (site_dir / "escaped").exists()
