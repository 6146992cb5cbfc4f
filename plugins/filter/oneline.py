"""The render-time guard of every role template: a value written into a server file stays on its line.

Site files are checked field by field before anything is rendered; this filter is the second wall, so a
field nobody checked fails the render loudly instead of starting a new line or directive on the host.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

# The characters the site checks refuse (mailappliance/errors.py): control characters (CR, LF, NUL, TAB, NEL,
# ...), format characters such as bidi overrides, lone surrogates, LINE and PARAGRAPH SEPARATOR. One definition,
# so anything that passed the site checks passes here.
from mailappliance.errors import is_unsafe_char

# How much of a refused value the error shows: enough to find it in the site file, never a whole secret.
_SHOWN = 40


def oneline(value: Any) -> str:
    """`value` as text, refused when it holds a control character (CR, LF, NUL, TAB, DEL, ...)."""
    if value is None or isinstance(value, (dict, list, tuple, set)):
        raise AnsibleFilterError(
            f"oneline: expected a single value, got {type(value).__name__}; join lists before writing them"
        )
    text = value if isinstance(value, str) else str(value)
    bad = next((char for char in text if is_unsafe_char(char)), None)
    if bad is not None:
        shown = text[:_SHOWN].encode("unicode_escape").decode("ascii")
        raise AnsibleFilterError(
            f"oneline: refusing to write {shown!r}{'...' if len(text) > _SHOWN else ''} into a configuration "
            f"file: it contains the control character U+{ord(bad):04X}; fix the site file field it came from"
        )
    return text


def oneline_lines(value: Any) -> str:
    """Text that is meant to span lines (a whole policy file): every line ends in LF and passes `oneline`."""
    if not isinstance(value, str):
        raise AnsibleFilterError(f"oneline_lines: expected text, got {type(value).__name__}")
    lines = value.split("\n")
    if lines[-1]:
        raise AnsibleFilterError("oneline_lines: the text must end with a line feed")
    for line in lines[:-1]:
        oneline(line)
    return value


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"oneline": oneline, "oneline_lines": oneline_lines}
