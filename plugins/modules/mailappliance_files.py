#!/usr/bin/python
"""Put a role's rendered files in place in one module run: compare each with what the host holds and replace only
those that differ, atomically, validated first. The mailappliance_files action renders them and calls this."""

from __future__ import annotations

DOCUMENTATION = r"""
module: mailappliance_files
short_description: Write many rendered files in one run, only those that differ
description:
  - Called by the mailappliance_files action, which renders a role's templates on the controller. For each file it
    compares content, owner, group and mode with the host's file; a file whose content differs is written to a
    temporary file beside it with its final owner, group and mode, validated, and renamed over the old one, and a
    file that differs only in owner, group or mode gets those changed in place.
  - Like ansible.builtin.copy, a symbolic link at I(dest) is replaced by a file, a missing parent folder is an error,
    a check run reports new content without looking up owner and group, and I(validate) runs on a copy with the
    final owner, group and mode, outside the file's folder, before the file is replaced.
options:
  files:
    description: The files, each with its content and attributes.
    type: list
    elements: dict
    required: true
    suboptions:
      dest:
        description: Absolute path on the host.
        type: path
        required: true
      content:
        description: The file's bytes, base64-encoded. Never logged.
        type: str
        required: true
      owner:
        description: User name or UID.
        type: str
        required: true
      group:
        description: Group name or GID.
        type: str
        required: true
      mode:
        description: Octal permission bits, such as C(0640).
        type: str
        required: true
      validate:
        description: Command that must succeed on the new content before it replaces the file; C(%s) is the path.
        type: str
      secret:
        description: The content holds secrets; no diff shows it and a failed validation's output is left out.
        type: bool
        default: false
      unsafe_writes:
        description:
          - When I(dest) cannot be renamed over because it is a mount point (EBUSY, as /etc/resolv.conf in a
            container), write it in place instead, as ansible.builtin.copy's unsafe_writes does. A reader may
            then see a half-written file for a moment.
        type: bool
        default: false
  diff_max_size:
    description: Files larger than this many bytes get no content diff, as Ansible's max_file_size_for_diff.
    type: int
    default: 104448
"""

RETURN = r"""
results:
  description: One entry per file, in the order given.
  type: list
  elements: dict
  returned: always
  contains:
    dest: {description: The path., type: str}
    changed: {description: Whether the file was (in check mode, would be) changed., type: bool}
    failed: {description: Whether writing or validating this file failed., type: bool}
    msg: {description: Why it failed., type: str}
    diff:
      description: >-
        In diff mode, for a changed file: the old content (before, before_header), or dst_binary or dst_larger when
        it cannot be shown, empty for a secret file; for a change of owner, group or mode only, before and after
        mappings of those.
      type: dict
"""

import base64
import errno
import grp
import os
import pwd
import stat
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_text

SECRET_OUTPUT_HIDDEN = "output hidden because the file holds secrets (secret: true)"


class FileError(Exception):
    """A file that cannot be written as asked; the message names no content."""


class ValidationError(FileError):
    """The validate command refused the new content."""

    def __init__(self, rc: int, stdout: str, stderr: str) -> None:
        super().__init__("failed to validate")
        self.rc, self.stdout, self.stderr = rc, stdout, stderr


def _account_id(name: str, lookup: Any, kind: str, command: str) -> int:
    """A numeric id as given, else the id of the named user or group."""
    try:
        return int(name)
    except ValueError:
        try:
            return lookup(name)
        except KeyError:
            raise FileError(f"{command} failed: failed to look up {kind} {name}") from None


def user_id(owner: str) -> int:
    return _account_id(owner, lambda name: pwd.getpwnam(name).pw_uid, "user", "chown")


def group_id(group: str) -> int:
    return _account_id(group, lambda name: grp.getgrnam(name).gr_gid, "group", "chgrp")


def file_mode(mode: str) -> int:
    try:
        value = int(mode, 8)
    except ValueError:
        raise FileError(f"mode {mode!r} is not an octal file mode") from None
    if not 0 <= value <= 0o7777:
        raise FileError(f"mode {mode!r} is not an octal file mode")
    return value


def read_current(dest: str) -> tuple[os.stat_result | None, bytes | None]:
    """The host's file at `dest`: its lstat and content, or (None, None) if absent; a link has no content here."""
    try:
        info = os.lstat(dest)
    except FileNotFoundError:
        return None, None
    if stat.S_ISDIR(info.st_mode):
        raise FileError(f"{dest} is a directory")
    if stat.S_ISLNK(info.st_mode):
        return info, None
    with open(dest, "rb") as stream:
        return info, stream.read()


def content_diff(dest: str, before: bytes | None, max_size: int) -> dict[str, Any]:
    """The before half of a content diff, in the keys ansible.builtin.copy uses."""
    if before is None:
        return {"before_header": dest, "before": ""}
    if b"\x00" in before[:8192]:
        return {"dst_binary": 1}
    if max_size > 0 and len(before) > max_size:
        return {"dst_larger": max_size}
    return {"before_header": dest, "before": to_text(before)}


def attribute_diff(dest: str, info: os.stat_result, uid: int, gid: int, mode: int) -> dict[str, Any]:
    """The changed attributes as ansible.builtin.file reports them: numeric owner and group, mode in octal."""
    before: dict[str, Any] = {"path": dest}
    after: dict[str, Any] = {"path": dest}
    if stat.S_IMODE(info.st_mode) != mode:
        before["mode"], after["mode"] = f"0{stat.S_IMODE(info.st_mode):03o}", f"0{mode:03o}"
    if info.st_uid != uid:
        before["owner"], after["owner"] = info.st_uid, uid
    if info.st_gid != gid:
        before["group"], after["group"] = info.st_gid, gid
    return {"before": before, "after": after}


def fill(handle: int, content: bytes, uid: int, gid: int, mode: int) -> None:
    """Give the new, empty file open as `handle` its final owner and mode, then `content`, and close it."""
    with os.fdopen(handle, "wb") as stream:
        os.fchown(stream.fileno(), uid, gid)
        os.fchmod(stream.fileno(), mode)
        stream.write(content)


def replace(dest: str, content: bytes, uid: int, gid: int, mode: int, unsafe_writes: bool = False) -> None:
    """Write `content` to a temporary file in the folder of `dest` and rename it over `dest`; with
    `unsafe_writes`, write a `dest` that cannot be renamed over (a mount point) in place."""
    directory = os.path.dirname(dest)
    if not os.path.isdir(directory):
        raise FileError(f"Destination directory {directory} does not exist")
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(dest)}.", suffix=".tmp")
    try:
        fill(handle, content, uid, gid, mode)
        os.replace(temporary, dest)
    except OSError as error:
        os.unlink(temporary)
        if not (unsafe_writes and error.errno == errno.EBUSY):
            raise
        fill(os.open(dest, os.O_WRONLY | os.O_TRUNC), content, uid, gid, mode)
    except BaseException:
        os.unlink(temporary)
        raise


def validate(module: AnsibleModule, spec: dict[str, Any], content: bytes, uid: int, gid: int, mode: int) -> None:
    """Run the file's validate command on a copy with its final attributes, outside the file's folder: a
    relative include in the copy resolves as it did for ansible.builtin.template."""
    command = spec["validate"]
    if "%s" not in command:
        raise FileError(f"validate must contain %s: {command}")
    folder = tempfile.mkdtemp(dir=module.tmpdir)
    candidate = os.path.join(folder, os.path.basename(spec["dest"]))
    fill(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), content, uid, gid, mode)
    rc, out, err = module.run_command(command % candidate)
    os.unlink(candidate)
    os.rmdir(folder)
    if rc != 0:
        if spec["secret"]:
            raise ValidationError(rc, "", SECRET_OUTPUT_HIDDEN)
        raise ValidationError(rc, out, err)


def put_file(module: AnsibleModule, spec: dict[str, Any]) -> dict[str, Any]:
    """Bring one file in line with `spec`; the per-file result."""
    dest, secret = spec["dest"], spec["secret"]
    result: dict[str, Any] = {"dest": dest, "changed": False}
    content = base64.b64decode(spec["content"], validate=True)
    mode = file_mode(spec["mode"])
    info, current = read_current(dest)
    if current != content:
        result["changed"] = True
        if module._diff:
            result["diff"] = content_diff(dest, None if secret else current, module.params["diff_max_size"])
        # As ansible.builtin.copy, a check run reports new content without looking up owner and group: they may
        # belong to a package this run only pretended to install.
        if not module.check_mode:
            uid, gid = user_id(spec["owner"]), group_id(spec["group"])
            if spec.get("validate"):
                validate(module, spec, content, uid, gid, mode)
            replace(dest, content, uid, gid, mode, spec["unsafe_writes"])
        return result
    uid, gid = user_id(spec["owner"]), group_id(spec["group"])
    if (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) != (mode, uid, gid):
        result["changed"] = True
        if module._diff:
            result["diff"] = attribute_diff(dest, info, uid, gid, mode)
        if not module.check_mode:
            os.chown(dest, uid, gid)
            os.chmod(dest, mode)
    return result


def run(module: AnsibleModule) -> dict[str, Any]:
    """Every file in turn; one that fails does not stop the others, as in a loop of ansible.builtin.template."""
    results = []
    for spec in module.params["files"]:
        try:
            result = put_file(module, spec)
        except ValidationError as error:
            result = {"dest": spec["dest"], "changed": False, "failed": True, "msg": str(error),
                      "exit_status": error.rc, "stdout": error.stdout, "stderr": error.stderr}
        except (FileError, OSError, ValueError) as error:
            message = str(error) if isinstance(error, FileError) else f"{type(error).__name__}: {error}"
            result = {"dest": spec["dest"], "changed": False, "failed": True, "msg": message}
        results.append(result)
    failed = [result for result in results if result.get("failed")]
    outcome: dict[str, Any] = {"changed": any(result["changed"] for result in results), "results": results}
    if failed:
        # The validator's complaint (hidden for a secret file) is what tells which line to fix.
        outcome.update(failed=True, msg="\n".join(
            f"{result['dest']}: {result['msg']}" + (f": {result['stderr'].strip()}" if result.get("stderr") else "")
            for result in failed))
    return outcome


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "files": {"type": "list", "elements": "dict", "required": True, "options": {
                "dest": {"type": "path", "required": True},
                "content": {"type": "str", "required": True, "no_log": True},
                "owner": {"type": "str", "required": True},
                "group": {"type": "str", "required": True},
                "mode": {"type": "str", "required": True},
                "validate": {"type": "str"},
                "secret": {"type": "bool", "default": False},
                "unsafe_writes": {"type": "bool", "default": False},
            }},
            "diff_max_size": {"type": "int", "default": 104448},
        },
        supports_check_mode=True,
    )
    outcome = run(module)
    if outcome.get("failed"):
        module.fail_json(**outcome)
    module.exit_json(**outcome)


if __name__ == "__main__":
    main()
