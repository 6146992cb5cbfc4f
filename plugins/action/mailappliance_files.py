"""Deploy a role's file list in one round trip: render every template on the controller, then one module run on the
host replaces only the files that differ.

A loop of ansible.builtin.template costs two or three module runs a file even when nothing changed; this costs one
for the whole list. The files are rendered by the mailappliance_preview action's own helper, so a deployed file is
byte for byte its preview.

    - mailappliance_files:
        files: "{{ _postfix__templates }}"   # entries: src, dest; optional owner, group, mode, validate, secret
        owner: root                          # for entries that name none
        group: root
        mode: "0644"
      register: _postfix__config

The result has one entry per file under `results`, with `changed` and the file's entry as `item`, like a loop's
result, and in diff mode a `diff` per changed file. Of a file with `secret: true` no content reaches a result, a
diff or an error message.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.loader import action_loader

# The preview action's _entries() checks the file list and its _content() gives the bytes ansible.builtin.template
# would write.
PreviewAction = action_loader.get("mailappliance_preview", class_only=True)

# Ansible's wording for the diff of a no_log task, with the reason.
_HIDDEN_DIFF = " [[ Diff output has been hidden because the file holds secrets (secret: true) ]]\n"
_ATTRIBUTES = ("owner", "group", "mode")


class ActionModule(PreviewAction):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("files", *_ATTRIBUTES))
    _supports_check_mode = True

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars if task_vars is not None else {}
        # ActionBase's checks (arguments, check mode), not the preview's run.
        result = super(PreviewAction, self).run(tmp, task_vars)
        entries = self._entries()
        if not entries:
            result.update(changed=False, results=[])
            return result
        try:
            contents = [self._content(entry, entry["dest"], task_vars) for entry in entries]
            specs = [self._spec(entry, content) for entry, content in zip(entries, contents)]
            outcome = self._execute_module(
                module_name="ansible.legacy.mailappliance_files",
                module_args={"files": specs, "diff_max_size": C.MAX_FILE_SIZE_FOR_DIFF},
                task_vars=task_vars,
            )
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        # The module's arguments hold every file's content.
        outcome.pop("invocation", None)
        results = outcome.get("results")
        if isinstance(results, list) and len(results) == len(entries):
            diffs = []
            for file_result, entry, content in zip(results, entries, contents):
                file_result["item"] = entry
                diff = file_result.pop("diff", None)
                if diff is not None:
                    diffs.append(_complete_diff(diff, entry, content))
            if self._task.diff and diffs:
                outcome["diff"] = diffs
        result.update(outcome)
        return result

    def _spec(self, entry: Mapping[str, Any], content: bytes) -> dict[str, Any]:
        """The module's arguments for one file: its content and attributes."""
        dest = entry["dest"]
        spec: dict[str, Any] = {"dest": dest, "content": base64.b64encode(content).decode("ascii"),
                                "secret": bool(entry.get("secret", False))}
        for key in _ATTRIBUTES:
            value = entry.get(key, self._task.args.get(key))
            if value is None:
                raise AnsibleActionFail(f"{dest}: no {key}; set it on the task or in the entry")
            # YAML reads an unquoted 0644 as the number 420.
            spec[key] = format(value, "04o") if key == "mode" and isinstance(value, int) else str(value)
        if entry.get("validate"):
            spec["validate"] = str(entry["validate"])
        if entry.get("unsafe_writes"):
            spec["unsafe_writes"] = True
        return spec


def _complete_diff(diff: dict[str, Any], entry: Mapping[str, Any], content: bytes) -> dict[str, Any]:
    """Add the new content to a content diff from the module (which holds the old one), as ansible.builtin.copy
    does; a diff of owner, group or mode comes complete."""
    if isinstance(diff.get("after"), Mapping):
        return diff
    if entry.get("secret"):
        diff.update(before="", after_header=entry["dest"], after=_HIDDEN_DIFF)
    elif b"\x00" in content:
        diff["src_binary"] = 1
    elif C.MAX_FILE_SIZE_FOR_DIFF > 0 and len(content) > C.MAX_FILE_SIZE_FOR_DIFF:
        diff["src_larger"] = C.MAX_FILE_SIZE_FOR_DIFF
    else:
        diff.update(after_header=entry["dest"], after=to_text(content))
    return diff
