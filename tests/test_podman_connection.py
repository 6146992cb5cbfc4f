"""plugins/connection/mailappliance_podman.py with podman replaced by a recorder: a piped module reaches the
container through `podman exec --interactive`, commands without input stay as the collection runs them, and the
container's filesystem is mounted once, when a file is first transferred."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT_DIR

# Runs in its own interpreter: the plugin loader installs Ansible's collection finder process-wide.
DRIVER = """
import json, sys
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader, init_plugin_loader

init_plugin_loader()
connection_loader.add_directory(sys.argv[1])
import ansible_collections.containers.podman.plugins.connection.podman as collection_plugin

calls = []

class Recorder:
    def __init__(self, argv, **kwargs):
        self.argv = [arg.decode() for arg in argv]
        self.returncode = 0
        calls.append({"argv": self.argv[1:]})

    def communicate(self, input=None):
        calls[-1]["stdin"] = input.decode() if input is not None else None
        return (sys.argv[2].encode() if self.argv[1] == "mount" else b"out"), b""

collection_plugin.subprocess.Popen = Recorder
context = PlayContext()
context.remote_addr, context.remote_user = "box", "root"
connection = connection_loader.get("mailappliance_podman", context, None)
connection.set_options(var_options={"ansible_podman_executable": "/bin/true"})
connection.exec_command("echo hi")
connection.exec_command("/bin/sh -c '/usr/bin/python3 && sleep 0'", in_data=b"module source")
connection.fetch_file("/etc/hostname", sys.argv[3] + "/first")
connection.fetch_file("/etc/hostname", sys.argv[3] + "/second")
print(json.dumps({"calls": calls, "pipelining": connection.is_pipelining_enabled()}))
"""


def test_modules_are_piped_and_the_mount_waits_for_a_transfer(tmp_path: Path) -> None:
    mount = tmp_path / "merged"
    (mount / "etc").mkdir(parents=True)
    (mount / "etc/hostname").write_text("mail.alpha.test\n")
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    process = subprocess.run(
        [sys.executable, "-c", DRIVER, str(PROJECT_DIR / "plugins/connection"), str(mount), str(fetched)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert process.returncode == 0, process.stderr
    report = json.loads(process.stdout.splitlines()[-1])
    assert report["pipelining"] is True
    assert report["calls"] == [
        {"argv": ["exec", "--user", "root", "box", "echo", "hi"], "stdin": None},
        {"argv": ["exec", "--interactive", "--user", "root", "box", "/bin/sh", "-c", "/usr/bin/python3 && sleep 0"],
         "stdin": "module source"},
        {"argv": ["mount", "box"], "stdin": None},
    ]
    assert (fetched / "first").read_text() == (fetched / "second").read_text() == "mail.alpha.test\n"
