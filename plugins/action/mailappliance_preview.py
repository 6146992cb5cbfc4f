"""The offline preview of a role's server files: every template of its file list rendered on the controller.

ansible.builtin.template runs module processes for every file; rendering a whole list in this one action, with
the template action's own variables and Jinja settings, writes the same bytes in a fraction of the time.

    - mailappliance_preview:
        files: "{{ _postfix__templates }}"   # entries: src, dest, optional mode (default 0644) and secret

Each file goes to <mailappliance__preview_dir>/<inventory_hostname><dest>. The action never contacts the host
and never returns file content; a dest listed twice is refused, and a failure in an entry with `secret: true` is reported without the error text,
which could quote a secret.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Mapping
from typing import Any

from jinja2.defaults import (
    BLOCK_END_STRING,
    BLOCK_START_STRING,
    COMMENT_END_STRING,
    COMMENT_START_STRING,
    VARIABLE_END_STRING,
    VARIABLE_START_STRING,
)

from ansible.errors import AnsibleActionFail, AnsibleError, AnsibleUndefinedVariable
from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.action import ActionBase
from ansible.plugins.action.template import ActionModule as TemplateAction
from ansible.template import trust_as_template
# The helper ansible.builtin.template uses for template_host, template_path, ansible_managed and the rest. It is
# internal to ansible-core, which pyproject.toml pins; tests/test_preview_action.py compares the two outputs.
from ansible._internal._templating._template_vars import generate_ansible_template_vars

# ansible.builtin.template's defaults for the options the role file lists never set.
_TEMPLATE_OVERRIDES = {
    "block_start_string": BLOCK_START_STRING,
    "block_end_string": BLOCK_END_STRING,
    "variable_start_string": VARIABLE_START_STRING,
    "variable_end_string": VARIABLE_END_STRING,
    "comment_start_string": COMMENT_START_STRING,
    "comment_end_string": COMMENT_END_STRING,
    "trim_blocks": True,
    "lstrip_blocks": False,
    "newline_sequence": TemplateAction.DEFAULT_NEWLINE_SEQUENCE,
}
_DEFAULT_MODE = "0644"
_DIRECTORY_MODE = 0o755


class ActionModule(ActionBase):
    _VALID_ARGS = frozenset(("files",))
    # The preview is only ever written, so a check run has nothing to report and skips the task.
    _supports_check_mode = False

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars if task_vars is not None else {}
        result = super().run(tmp, task_vars)
        files = self._entries()
        try:
            preview_dir = self._templar.resolve_variable_expression("mailappliance__preview_dir")
        except AnsibleUndefinedVariable:
            preview_dir = None
        if not preview_dir:
            raise AnsibleActionFail("mailappliance__preview_dir is not set; `mailappliance render` sets it")
        host = self._templar.resolve_variable_expression("inventory_hostname")
        host_root = os.path.join(os.path.abspath(str(preview_dir)), str(host))
        written = []
        for entry in files:
            dest = entry["dest"]
            path = os.path.normpath(host_root + dest)
            # A dest climbing out with '..' would write outside the preview.
            if not path.startswith(host_root + os.sep):
                raise AnsibleActionFail(f"{dest}: leaves the preview folder")
            content = self._content(entry, path, task_vars)
            if _write(path, content, _mode(entry.get("mode", _DEFAULT_MODE), dest)):
                written.append(dest)
        result.update(changed=bool(written), written=written)
        return result

    def _entries(self) -> list[Mapping[str, Any]]:
        """The task's file list, each entry with src and an absolute dest, no dest twice."""
        files = self._task.args.get("files")
        if not isinstance(files, list) or not all(isinstance(entry, Mapping) for entry in files):
            raise AnsibleActionFail("files must be a list of mappings with src and dest")
        seen = set()
        for entry in files:
            src, dest = entry.get("src"), entry.get("dest")
            if not isinstance(src, str) or not isinstance(dest, str) or not posixpath.isabs(dest):
                raise AnsibleActionFail(f"every file needs src and an absolute dest; got src={src!r} dest={dest!r}")
            if posixpath.normpath(dest) in seen:
                raise AnsibleActionFail(f"{dest}: listed twice")
            seen.add(posixpath.normpath(dest))
        return files

    def _content(self, entry: Mapping[str, Any], dest: str, task_vars: dict[str, Any]) -> bytes:
        """_render of `entry` for `dest`; when the entry holds secrets, a failure says so without its message."""
        try:
            return self._render(entry, dest, task_vars)
        except Exception:
            if not entry.get("secret"):
                raise
            raise AnsibleActionFail(f"{entry['dest']}: rendering {entry['src']} failed; the message is hidden because "
                                    "the file holds secrets (secret: true)") from None

    def _render(self, entry: Mapping[str, Any], dest: str, task_vars: dict[str, Any]) -> bytes:
        """The bytes ansible.builtin.template would write to `dest` (its run() up to the copy)."""
        src = entry["src"]
        try:
            source = self._find_needle("templates", src)
        except AnsibleError as error:
            raise AnsibleActionFail(str(error)) from None
        template_data = trust_as_template(self._loader.get_text_file_contents(source))
        # Includes are looked up in the templates/ folder of each search path and in the path itself.
        searchpath = []
        for directory in [*task_vars.get("ansible_search_path", []), self._loader._basedir, os.path.dirname(source)]:
            searchpath.extend([os.path.join(directory, "templates"), directory])
        template_vars = task_vars.copy()
        # configure.yml templates each file in a loop over this list, and a template may name its own entry.
        template_vars.update(item=entry, ansible_loop_var="item")
        template_vars.update(generate_ansible_template_vars(
            path=src, fullpath=source, dest_path=dest, include_ansible_managed="ansible_managed" not in template_vars,
        ))
        templar = self._templar.copy_with_new_env(searchpath=searchpath, available_variables=template_vars)
        rendered = templar.template(template_data, escape_backslashes=False, overrides=dict(_TEMPLATE_OVERRIDES))
        return to_bytes(rendered if rendered is not None else "", encoding="utf-8", errors="surrogate_or_strict")


def _mode(value: Any, dest: str) -> int:
    try:
        mode = value if isinstance(value, int) else int(str(value), 8)
    except ValueError:
        raise AnsibleActionFail(f"{dest}: mode {value!r} is not an octal file mode") from None
    if not 0 <= mode <= 0o7777:
        raise AnsibleActionFail(f"{dest}: mode {value!r} is not an octal file mode")
    return mode


def _write(path: str, content: bytes, mode: int) -> bool:
    """Write `content` with `mode` unless `path` already holds exactly that; return whether it wrote."""
    try:
        with open(path, "rb") as stream:
            unchanged = stream.read() == content
        if unchanged and (os.stat(path).st_mode & 0o7777) == mode:
            return False
    except FileNotFoundError:
        pass
    directory = os.path.dirname(path)
    _make_dirs(directory)
    # A temporary file renamed into place, so a reader never sees half a file or a secret with the wrong mode.
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return True


def _make_dirs(directory: str) -> None:
    """Create `directory` and its missing parents with the mode ansible.builtin.file gave the preview folders."""
    if os.path.isdir(directory):
        return
    _make_dirs(os.path.dirname(directory))
    try:
        os.mkdir(directory)
    except FileExistsError:
        return
    os.chmod(directory, _DIRECTORY_MODE)
