"""plugins/modules/mailappliance_files.py, run as Ansible runs it (a module process reading its arguments) on files
in tmp_path: it replaces exactly the files that differ, with their owner, group and mode from the first byte,
validates before replacing, and never returns a secret file's content."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import PROJECT_DIR

MODULE = PROJECT_DIR / "plugins/modules/mailappliance_files.py"
OWNER, GROUP = str(os.getuid()), str(os.getgid())
SECRET = "hunter2-not-for-logs"


def spec(dest: Path, text: str, **extra: Any) -> dict[str, Any]:
    return {"dest": str(dest), "content": base64.b64encode(text.encode()).decode(), "owner": OWNER, "group": GROUP,
            "mode": "0644", **extra}


def run_module(tmp_path: Path, files: list[dict[str, Any]], *, check: bool = False,
               diff: bool = False) -> tuple[dict[str, Any], str]:
    """The module's result and its raw output."""
    args = {"ANSIBLE_MODULE_ARGS": {"files": files, "_ansible_check_mode": check, "_ansible_diff": diff,
                                    "_ansible_remote_tmp": str(tmp_path / "remote-tmp"),
                                    "_ansible_no_log": False}}
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps(args))
    process = subprocess.run([sys.executable, str(MODULE), str(args_file)], capture_output=True, text=True,
                             timeout=60, check=False)
    args_file.unlink()
    return json.loads(process.stdout), process.stdout + process.stderr


def test_writes_new_files_then_leaves_them_alone(tmp_path: Path) -> None:
    plain, private = tmp_path / "plain.conf", tmp_path / "private.conf"
    files = [spec(plain, "a = 1\n"), spec(private, "b = 2\n", mode="0640")]
    result, _ = run_module(tmp_path, files)
    assert result["changed"] is True
    assert [(entry["dest"], entry["changed"]) for entry in result["results"]] == [(str(plain), True),
                                                                                 (str(private), True)]
    assert plain.read_text() == "a = 1\n" and private.read_text() == "b = 2\n"
    assert stat.S_IMODE(plain.stat().st_mode) == 0o644 and stat.S_IMODE(private.stat().st_mode) == 0o640
    inode = plain.stat().st_ino

    again, _ = run_module(tmp_path, files)
    assert again["changed"] is False
    assert not any(entry["changed"] for entry in again["results"])
    assert plain.stat().st_ino == inode
    # No temporary file is left beside them.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["plain.conf", "private.conf"]


def test_replaces_only_the_file_that_differs(tmp_path: Path) -> None:
    same, other = tmp_path / "same.conf", tmp_path / "other.conf"
    same.write_text("same\n")
    other.write_text("old\n")
    for path in (same, other):
        path.chmod(0o644)
    same_inode, other_inode = same.stat().st_ino, other.stat().st_ino
    result, _ = run_module(tmp_path, [spec(same, "same\n"), spec(other, "new\n")])
    assert [entry["changed"] for entry in result["results"]] == [False, True]
    assert same.stat().st_ino == same_inode
    # Replaced by a rename, so a reader sees the old or the new file, never half of one.
    assert other.stat().st_ino != other_inode and other.read_text() == "new\n"


def test_mode_change_alone_is_applied_in_place_with_the_file_modules_diff(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("x\n")
    path.chmod(0o644)
    inode = path.stat().st_ino
    result, _ = run_module(tmp_path, [spec(path, "x\n", mode="0640")], diff=True)
    assert result["results"][0]["changed"] is True
    assert result["results"][0]["diff"] == {"before": {"path": str(path), "mode": "0644"},
                                            "after": {"path": str(path), "mode": "0640"}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.stat().st_ino == inode


def test_check_mode_reports_and_diffs_without_writing(tmp_path: Path) -> None:
    existing, missing = tmp_path / "main.cf", tmp_path / "absent/new.cf"
    existing.write_text("old line\n")
    existing.chmod(0o644)
    # The owner of a file not written yet may come from a package the check run only pretended to install.
    files = [spec(existing, "new line\n"), spec(missing, "x\n", owner="no-such-user", group="no-such-group")]
    result, _ = run_module(tmp_path, files, check=True, diff=True)
    assert [entry["changed"] for entry in result["results"]] == [True, True]
    assert result["results"][0]["diff"] == {"before_header": str(existing), "before": "old line\n"}
    assert result["results"][1]["diff"] == {"before_header": str(missing), "before": ""}
    assert existing.read_text() == "old line\n" and not missing.parent.exists()


def test_validate_runs_on_the_final_attributes_and_guards_the_old_file(tmp_path: Path) -> None:
    good, bad, after = tmp_path / "good.conf", tmp_path / "bad.conf", tmp_path / "after.conf"
    bad.write_text("working\n")
    # Passes only for a file holding "valid" with the mode the file will have.
    check = ("/bin/sh -c 'grep -q valid \"$1\" && test \"$(stat -c %%a \"$1\")\" = 640 "
             "|| { echo \"line 1: not valid\" >&2; exit 1; }' check %s")
    files = [spec(good, "valid\n", mode="0640", validate=check), spec(bad, "broken\n", mode="0640", validate=check),
             spec(after, "later\n")]
    result, _ = run_module(tmp_path, files)
    assert result["failed"] is True
    assert result["msg"] == f"{bad}: failed to validate: line 1: not valid"
    first, second, third = result["results"]
    assert first["changed"] is True and good.read_text() == "valid\n"
    assert second["failed"] is True and second["exit_status"] == 1 and bad.read_text() == "working\n"
    # One file failing does not stop the others, as in a loop.
    assert third["changed"] is True and after.read_text() == "later\n"
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(".")) == []


def test_validate_without_placeholder_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.conf"
    result, _ = run_module(tmp_path, [spec(path, "x\n", validate="/bin/true")])
    assert result["failed"] is True and "validate must contain %s" in result["msg"]
    assert not path.exists()


def test_secret_content_never_leaves_the_module(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"old {SECRET}-old\n")
    echo = "/bin/sh -c 'cat \"$1\"; cat \"$1\" >&2; exit 1' check %s"
    result, output = run_module(tmp_path, [spec(path, f"new {SECRET}\n", validate=echo, secret=True)], diff=True)
    assert result["failed"] is True
    entry = result["results"][0]
    assert entry["stdout"] == "" and "hidden" in entry["stderr"]
    assert result["msg"] == f"{path}: failed to validate: output hidden because the file holds secrets (secret: true)"
    encoded = base64.b64encode(f"new {SECRET}\n".encode()).decode()
    assert SECRET not in output and encoded not in output
    assert path.read_text() == f"old {SECRET}-old\n"

    result, output = run_module(tmp_path, [spec(path, f"new {SECRET}\n", secret=True)], diff=True)
    assert result["results"][0]["changed"] is True
    assert result["results"][0]["diff"] == {"before_header": str(path), "before": ""}
    assert SECRET not in output and encoded not in output
    assert path.read_text() == f"new {SECRET}\n"


def test_symlink_is_replaced_by_a_file_and_missing_folder_is_an_error(tmp_path: Path) -> None:
    target, link = tmp_path / "target", tmp_path / "link"
    target.write_text("same\n")
    link.symlink_to(target)
    missing = tmp_path / "absent/x.conf"
    result, _ = run_module(tmp_path, [spec(link, "same\n"), spec(missing, "x\n")])
    assert result["results"][0]["changed"] is True
    assert not link.is_symlink() and link.read_text() == "same\n" and target.read_text() == "same\n"
    assert result["results"][1] == {"dest": str(missing), "changed": False, "failed": True,
                                    "msg": f"Destination directory {missing.parent} does not exist"}


def test_unknown_owner_fails_that_file_only(tmp_path: Path) -> None:
    path, other = tmp_path / "a.conf", tmp_path / "b.conf"
    result, _ = run_module(tmp_path, [spec(path, "a\n", owner="no-such-user"), spec(other, "b\n")])
    assert result["results"][0]["msg"] == "chown failed: failed to look up user no-such-user"
    assert not path.exists() and other.read_text() == "b\n"


def run_over_a_bind_mount(tmp_path: Path, files: list[dict[str, Any]], source: Path, dest: Path) -> dict[str, Any]:
    """The module's result for files whose `dest` is a bind mount of `source`, as /etc/resolv.conf is in a
    container; the mount lives in a private mount namespace that ends with the run."""
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "files": files, "_ansible_remote_tmp": str(tmp_path / "remote-tmp"), "_ansible_no_log": False}}))
    process = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount --bind "$1" "$2" && exec "$3" "$4" "$5"',
         "-", str(source), str(dest), sys.executable, str(MODULE), str(args_file)],
        capture_output=True, text=True, timeout=60, check=False)
    return json.loads(process.stdout)


def test_a_mount_point_is_written_in_place_only_with_unsafe_writes(tmp_path: Path) -> None:
    source, dest = tmp_path / "host-resolv.conf", tmp_path / "resolv.conf"
    source.write_text("nameserver 192.0.2.53\n")
    dest.write_text("")
    refused = run_over_a_bind_mount(tmp_path, [spec(dest, "nameserver 127.0.0.1\n")], source, dest)
    assert refused["failed"] is True and "busy" in refused["results"][0]["msg"].lower()
    assert source.read_text() == "nameserver 192.0.2.53\n"

    written = run_over_a_bind_mount(tmp_path, [spec(dest, "nameserver 127.0.0.1\n", unsafe_writes=True)], source, dest)
    assert written["changed"] is True and not written.get("failed")
    assert source.read_text() == "nameserver 127.0.0.1\n"
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(".")) == []
