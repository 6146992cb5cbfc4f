"""playbooks/audit.yml is read-only by construction, and its syntax is valid (lint runs in test_lint.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import yaml

from conftest import PROJECT_DIR
from test_lint import BIN, run_tool

PLAYBOOK = PROJECT_DIR / "playbooks" / "audit.yml"
# uri only with method GET (checked below): it reads Rspamd's /stat, and a GET to the controller changes nothing.
READ_ONLY_MODULES = {"ansible.builtin.find", "ansible.builtin.service_facts", "ansible.builtin.uri"}
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
        if mod == "ansible.builtin.uri":
            # Nothing but a GET with headers: no body, no other method, no file written (dest).
            assert task[mod]["method"] == "GET" and set(task[mod]) <= {"url", "method", "headers", "timeout"}, name
            assert task.get("changed_when") is False and task.get("check_mode") is False, name


def test_secret_files_are_never_read_out() -> None:
    for task in tasks():
        assert module(task) != "ansible.builtin.slurp", task["name"]
    users = next(t for t in tasks() if "/etc/dovecot/users" in str(t.get("ansible.builtin.shell", "")))
    # Only the {SCHEME} prefix of each hash leaves the host.
    assert "cut -d ':' -f 2" in users["ansible.builtin.shell"]["cmd"]
    assert "s/^{\\([A-Za-z0-9.-]*\\)}.*/\\1/p" in users["ansible.builtin.shell"]["cmd"]
    dkim = next(t for t in tasks() if t["name"] == "Measure DKIM key sizes")
    assert "-pubout" in dkim["ansible.builtin.shell"]["cmd"]


def test_the_controller_password_stays_in_one_silent_task() -> None:
    holders = [t for t in tasks() if "mailappliance__rspamd_controller_password" in str(t)]
    assert [t["name"] for t in holders] == ["Read Rspamd's recent scan times"]
    assert holders[0]["no_log"] is True
    # Only the status, the error message and three fields of the reply reach the evidence, never the request.
    handed = next(t for t in tasks() if t["name"] == "Hand the evidence to the controller")
    stat = str(handed["vars"]["audit_evidence"]["rspamd_stat"])
    assert set(re.findall(r"audit_rspamd_stat[.\w]*", stat)) == {
        "audit_rspamd_stat.status", "audit_rspamd_stat.msg", "audit_rspamd_stat.json.scanned",
        "audit_rspamd_stat.json.uptime", "audit_rspamd_stat.json.scan_times"}


def test_the_controller_is_where_the_rspamd_role_binds_it() -> None:
    defaults = yaml.safe_load((PROJECT_DIR / "roles/rspamd/defaults/main.yml").read_text())
    plays = yaml.safe_load(PLAYBOOK.read_text())
    assert plays[0]["vars"]["audit_rspamd_controller"] == f"127.0.0.1:{defaults['rspamd__controller_port']}"


def play_vars() -> dict[str, Any]:
    return yaml.safe_load(PLAYBOOK.read_text())[0]["vars"]


def test_only_queue_names_counts_and_arrival_times_leave_the_host() -> None:
    summary = next(t for t in tasks() if t["name"] == "Sum up the Postfix queues")
    assert "postqueue -j | python3 -c \"$SUMMARY\"" in summary["ansible.builtin.shell"]["cmd"]
    # The channels' queues are summed up by the same program.
    assert summary["environment"]["SUMMARY"] == "{{ audit_queue_summary }}"
    assert next(t for t in tasks() if t["name"] == "Read the outbound setup of every Postfix instance")[
        "environment"]["SUMMARY"] == "{{ audit_queue_summary }}"
    listing = [
        {"queue_name": "deferred", "queue_id": "4F1A2B3C", "arrival_time": 1764000000, "message_size": 812,
         "forced_expire": False, "sender": "alice@alpha.test",
         "recipients": [{"address": "bob@example.net", "delay_reason": "connect to mx.example.net: timed out"}]},
        {"queue_name": "deferred", "queue_id": "5A6B7C8D", "arrival_time": 1763990000, "message_size": 90,
         "forced_expire": False, "sender": "", "recipients": [{"address": "carol@example.org"}]},
        {"queue_name": "hold", "queue_id": "6B7C8D9E", "arrival_time": 1764100000, "message_size": 10,
         "forced_expire": False, "sender": "dave@alpha.test", "recipients": [{"address": "erin@example.com"}]},
    ]
    result = subprocess.run([sys.executable, "-c", play_vars()["audit_queue_summary"]], check=True, text=True,
                            capture_output=True, input="".join(json.dumps(m) + "\n" for m in listing))
    assert result.stdout.splitlines() == ["deferred 2 1763990000", "hold 1 1764100000"]


def test_audit_playbook_syntax() -> None:
    result = run_tool("ansible-playbook", "--syntax-check", "playbooks/audit.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_clamav_databases_are_found_by_the_site_models_extensions() -> None:
    # The extension list exists once, in the site model; the playbook gets it from the CLI.
    text = (PROJECT_DIR / "playbooks" / "audit.yml").read_text()
    assert "mailappliance__audit_clamav_database_extensions" in text and "use_regex: true" in text
    assert '"*.hdb"' not in text


def test_the_outbound_reader_only_reads() -> None:
    # Its commands: postconf to print settings, postmap -s to print a table, postqueue -j to list a queue, and
    # systemctl show; never postconf -e or -X, postmap building a table, postsuper, or a systemctl verb.
    reader = next(t for t in tasks() if t["name"] == "Read the outbound setup of every Postfix instance")
    assert reader["ansible.builtin.command"]["argv"] == ["python3", "-c", "{{ audit_outbound_reader }}"]
    program = reader["vars"]["audit_outbound_reader"]
    calls = re.findall(r'(?:run|argv = )\(?\[\s*("[^"]*"|sys\.executable)((?:\s*,\s*(?:"[^"]*"|\*\w+))*)', program)
    assert {tool for tool, _ in calls} == {'"postconf"', '"postmap"', '"postqueue"', '"systemctl"', "sys.executable"}
    for tool, arguments in calls:
        words = re.findall(r'"([^"]*)"', arguments)
        assert {
            '"postconf"': lambda: set(words) <= {"-x", "-P"},
            '"postmap"': lambda: words == ["-s"],
            '"postqueue"': lambda: words == ["-j"],
            '"systemctl"': lambda: words[0] == "show" and "--value" in words,
            "sys.executable": lambda: words == ["-c"],
        }[tool](), (tool, words)


def test_the_archive_reader_gets_the_previous_reports_anchors_as_quoted_arguments(tmp_path) -> None:
    """The reader's command line as Ansible renders it, with and without anchors (judge_archive.anchors_of only
    passes SEQ:HASH on; the quoting keeps anything else one argument all the same)."""
    task = next(t for t in tasks() if t["name"] == "Read the archive's state")
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "tasks": [{"name": "show", "ansible.builtin.debug": {"msg": task["ansible.builtin.shell"]["cmd"]}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    anchor = "5150:" + "5e" * 32

    def rendered(anchors: list[str] | None) -> str:
        extra = ["-e", json.dumps({"mailappliance__audit_archive_anchors": anchors})] if anchors is not None else []
        done = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", *extra, str(tmp_path / "play.yml")],
                              capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "json"})
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        # The JSON document, between the profile_tasks callback's lines.
        output, _ = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{"):])
        result = output["plays"][0]["tasks"][0]["hosts"]["localhost"]
        return str(result["msg"]).rstrip()

    base = "--log - --hours 24"
    assert rendered(None).endswith(base)
    assert rendered([anchor]).endswith(f"{base} --anchor={anchor}")
    assert rendered(["1:x; rm -rf /"]).endswith(f"{base} '--anchor=1:x; rm -rf /'")
