"""The outbound reader of playbooks/audit.yml against what the postfix role deploys: Postfix's tools are stood in
for by small programs that answer from the offline preview of the README's example site (main.cf, master.cf, the
tables, the policy service's unit and accounts file), so the reader reads what a deployed host holds, through
Ansible as the audit runs it, and the outbound controls pass on it. One render for the module (about ten
seconds); a live host is Molecule's `routes` scenario."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import auditfixtures as fx
import certificates
from clirunner import run_cli
from conftest import EICAR_HDB, OUTBOUND_SITE, OVERSEAS_LIST, PROJECT_DIR
from mailappliance.audit.judge_host import judge_outbound, outbound_expectations
from test_lint import BIN
from test_outbound_preview import RELAY_PASSWORD, add_relay_password

PLAYBOOK = PROJECT_DIR / "playbooks" / "audit.yml"
READER = "Read the outbound setup of every Postfix instance"
HOST = "mail.acme.example"

# Postfix's postconf, postmap and postqueue and systemd's systemctl, answering from a preview folder as if it were
# the host's root (FAKE_ROOT): the few calls the reader makes, with the output formats of Postfix 3.7 and
# systemd 252 (Debian 12).
FAKE_TOOL = '''\
import os, re, sys
ROOT = os.environ["FAKE_ROOT"]
tool, args = os.path.basename(sys.argv[0]), sys.argv[1:]
DEFAULTS = {"multi_instance_name": "", "multi_instance_directories": "", "transport_maps": "",
            "smtp_tls_policy_maps": "", "smtp_tls_security_level": "", "smtp_fallback_relay": "",
            "smtpd_end_of_data_restrictions": "", "qmgr_message_active_limit": "20000"}

def option(name, default=None):
    return args[args.index(name) + 1] if name in args else default

def logical(path):
    lines = []
    for line in open(ROOT + path).read().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line.strip())
    return lines

if tool == "postconf":
    directory = option("-c", "/etc/postfix")
    if "-P" in args:
        for line in logical(directory + "/master.cf"):
            words = line.split()
            for index, word in enumerate(words):
                if word == "-o":
                    name, _, value = words[index + 1].partition("=")
                    print(f"{words[0]}/{words[1]}/{name} = {value}")
        sys.exit(0)
    values = dict(DEFAULTS, config_directory=directory)
    for line in logical(directory + "/main.cf"):
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip()
    for name in [a for a in args if re.fullmatch(r"[a-z_]+", a)]:
        value = values[name]
        if "-x" in args:
            value = re.sub(r"\\$\\{?(\\w+)\\}?", lambda m: values.get(m.group(1), m.group(0)), value)
        print(f"{name} = {value}".rstrip())
elif tool == "postmap":
    kind, _, path = option("-s").partition(":")
    assert kind == "texthash", kind
    for line in logical(path):
        key, value = line.split(None, 1)
        print(f"{key.lower()}\\t{value}")
elif tool == "postqueue":
    listing = ROOT + "/queues/" + os.path.basename(option("-c", "/etc/postfix")) + ".jsonl"
    if os.path.exists(listing):
        sys.stdout.write(open(listing).read())
elif tool == "systemctl":
    unit = ROOT + "/etc/systemd/system/" + args[-1]
    prop = option("--property") or [a.partition("=")[2] for a in args if a.startswith("--property=")][0]
    if prop == "ActiveState":
        print("active" if os.path.exists(unit) else "inactive")
    elif os.path.exists(unit):
        command = next(line.partition("=")[2] for line in open(unit) if line.startswith("ExecStart="))
        command = command.strip().replace("--accounts /", "--accounts " + ROOT + "/")
        print(f"{{ path={command.split()[0]} ; argv[]={command} ; ignore_errors=no ; start_time=[n/a] ; "
              "stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }")
    else:
        print()
'''


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's example site rendered: inventories/acme and build/acme/preview/mail.acme.example."""
    root = tmp_path_factory.mktemp("outbound-audit")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.delenv("MAILAPPLIANCE_INVENTORY_ROOT", raising=False)
        patch.delenv("MAILAPPLIANCE_BUILD_ROOT", raising=False)
        certificates.write_tls(root)
        (root / "eicar.hdb").write_text(EICAR_HDB)
        (root / "overseas.txt").write_text(OVERSEAS_LIST)
        (root / "site.yml").write_text(OUTBOUND_SITE)
        run_cli("render", "site.yml")  # writes the inventory, then stops: isp1's password is not in the vault
        add_relay_password(root / "inventories/acme")
        result = run_cli("render", "site.yml")
        assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def tools(tmp_path: Path, rendered: Path) -> dict[str, str]:
    """The environment that puts the stand-in tools first, answering from the example site's preview."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("postconf", "postmap", "postqueue", "systemctl"):
        path = bin_dir / tool
        path.write_text(f"#!{sys.executable}\n{FAKE_TOOL}")
        path.chmod(0o755)
    return {**os.environ, "PATH": os.pathsep.join([str(bin_dir), str(BIN), os.environ.get("PATH", os.defpath)]),
            "FAKE_ROOT": str(rendered / "build/acme/preview" / HOST)}


def plays() -> list[dict[str, Any]]:
    return yaml.safe_load(PLAYBOOK.read_text())


def reader_task() -> dict[str, Any]:
    return next(task for task in plays()[0]["tasks"] if task["name"] == READER)


def run_reader(env: dict[str, str]) -> dict[str, Any]:
    """The reader as the task runs it, without Ansible: its program, with SUMMARY and POLICY_UNIT set."""
    play_vars = plays()[0]["vars"]
    task = reader_task()
    result = subprocess.run(
        [sys.executable, "-c", task["vars"]["audit_outbound_reader"]], capture_output=True, text=True, check=True,
        env={**env, "SUMMARY": play_vars["audit_queue_summary"], "POLICY_UNIT": play_vars["audit_account_policy_unit"]})
    return json.loads(result.stdout)


def site_outbound(rendered: Path) -> dict[str, list[dict[str, Any]]]:
    expectations = outbound_expectations(
        yaml.safe_load((rendered / "inventories/acme/group_vars/all/site.yml").read_text()))
    assert expectations is not None
    return expectations


def test_the_outbound_controls_pass_on_what_the_postfix_role_deploys(rendered: Path, tools: dict[str, str]) -> None:
    evidence = run_reader(tools)
    controls = judge_outbound({**fx.host(), "outbound": evidence}, site_outbound(rendered), fx.CLOCK)
    assert {c.id: c.status for c in controls} == {
        "OUTBOUND-RELAY-TLS": "pass", "OUTBOUND-ROUTE-FALLBACK": "pass", "OUTBOUND-ACCOUNT-LIMITS": "pass",
        "OUTBOUND-CHANNEL-QUEUES": "pass"}, "\n".join(f"{c.id}: {c.evidence}" for c in controls)


def test_the_recorded_evidence_is_what_the_reader_sees(rendered: Path, tools: dict[str, str]) -> None:
    # tests/auditfixtures.py's outbound() is recorded by hand; here it is held to the deployed configuration.
    evidence, recorded = run_reader(tools), fx.outbound()
    assert [i["name"] for i in evidence["instances"]] == ["postfix-orders", "postfix-bulk"]
    for seen, kept in zip([evidence["staff"], *evidence["instances"]], [recorded["staff"], *recorded["instances"]],
                          strict=True):
        assert (seen["tls_policy"], seen["transports"], seen["errors"]) == (kept["tls_policy"], kept["transports"], [])
        assert set(kept["services"]) <= set(seen["services"])
        assert fx.settings_of(seen) == fx.settings_of(kept)
        assert seen.get("queues") == kept.get("queues")
    assert evidence["accounts"]["accounts"] == recorded["accounts"]["accounts"]
    assert evidence["accounts"]["file"].endswith("/etc/mailappliance/accounts.json")
    assert evidence["accounts"]["socket"] == "active"


def test_the_reader_keeps_logins_and_recipient_domains_on_the_host(rendered: Path, tools: dict[str, str]) -> None:
    text = json.dumps(run_reader(tools))
    assert RELAY_PASSWORD not in text and "carrier_logins" not in reader_task()["vars"]["audit_outbound_reader"]
    # How many domains take each route leaves the host, never which: the lists are the site's business.
    for domain in (".co.uk", "partner.example.net", "acme.example "):
        assert domain not in text


def test_the_reader_on_an_appliance_without_outbound(tmp_path: Path, tools: dict[str, str]) -> None:
    # Debian's main.cf with none of the outbound settings, no channel instance and no policy service.
    root = tmp_path / "root"
    (root / "etc/postfix").mkdir(parents=True)
    (root / "etc/postfix/main.cf").write_text("myhostname = mail.demo.test\n")
    (root / "etc/postfix/master.cf").write_text("smtp      inet  n       -       y       -       -       smtpd\n")
    evidence = run_reader({**tools, "FAKE_ROOT": str(root)})
    recorded = fx.host()["outbound"]
    assert evidence["instances"] == [] and evidence["accounts"] == recorded["accounts"]
    assert (evidence["staff"]["tls_policy"], evidence["staff"]["transports"]) == ({}, {})
    assert fx.settings_of(evidence["staff"]) == {**fx.settings_of(recorded["staff"]), "smtp_tls_security_level": ""}


def test_a_channels_queue_is_summed_up_like_the_staff_one(rendered: Path, tools: dict[str, str],
                                                          tmp_path: Path) -> None:
    root = Path(tools["FAKE_ROOT"])
    listing = [{"queue_name": "deferred", "queue_id": "4F1A2B3C", "arrival_time": 1764000000, "message_size": 812,
                "sender": "bounces+shop+bob=example.net@acme.example",
                "recipients": [{"address": "bob@example.net", "delay_reason": "connect to smtp.isp1.example: timed "
                                                                              "out"}]}] * 3
    (root / "queues").mkdir(exist_ok=True)
    try:
        (root / "queues/postfix-orders.jsonl").write_text("".join(json.dumps(m) + "\n" for m in listing))
        evidence = run_reader(tools)
    finally:
        (root / "queues/postfix-orders.jsonl").unlink()
    assert evidence["instances"][0]["queues"] == {"rc": 0, "summary": ["deferred 3 1764000000"], "error": ""}
    assert "bob@example.net" not in json.dumps(evidence) and "4F1A2B3C" not in json.dumps(evidence)


def test_ansible_runs_the_reader_and_hands_its_evidence_over(tmp_path: Path, tools: dict[str, str]) -> None:
    # The reader task and the expression that hands its output over, as playbooks/audit.yml has them, run by
    # ansible-playbook on this machine: Ansible's templating must leave the program as it is.
    play = plays()[0]
    handed = next(t for t in play["tasks"] if t["name"] == "Hand the evidence to the controller")
    output = tmp_path / "evidence.json"
    playbook = [{
        "name": "The audit's outbound reader", "hosts": "localhost", "gather_facts": False, "vars": play["vars"],
        "tasks": [reader_task(), {
            "name": "Hand the outbound evidence over",
            "ansible.builtin.copy": {"content": "{{ outbound | to_nice_json }}", "dest": str(output),
                                     "mode": "0600"},
            "vars": {"outbound": handed["vars"]["audit_evidence"]["outbound"]}}],
    }]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    env = {**tools, "ANSIBLE_CONFIG": str(PROJECT_DIR / "ansible.cfg"), "NO_COLOR": "1"}
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e",
         f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(output.read_text()) == run_reader(tools)
    # A reader that cannot run is handed over as an error, which the controls report.
    env["PATH"] = os.pathsep.join([str(tmp_path / "nothing"), env["PATH"]])
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "python3").symlink_to("/bin/false")
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e",
         f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(output.read_text()) == {"error": "the outbound reader failed (exit 1): "}
