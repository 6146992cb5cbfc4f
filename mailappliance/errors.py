"""The one exception type for problems the user can fix; the CLI prints it without a traceback."""

import unicodedata

from mailappliance.exit_codes import EXIT_CODE_USER_ERROR

# Characters that end a line for some reader (CR, LF, NEL, U+2028, ...), control a terminal, or are not
# text at all: control (Cc), format (Cf, e.g. bidi overrides), lone surrogates (Cs), line and paragraph
# separators (Zl, Zp).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def is_unsafe_char(char: str) -> bool:
    """Whether `char` could break a line or hide text in a message or a configuration file."""
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def escape_unsafe(text: str) -> str:
    r"""`text` with every unsafe character written as a \uXXXX escape, so it prints as one plain line."""
    if not any(is_unsafe_char(char) for char in text):
        return text
    return "".join(
        (f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}") if is_unsafe_char(char) else char
        for char in text
    )


class UserError(Exception):
    """A problem the user can fix, described by one clear line per problem found.

    Validation reports every problem at once, so an error may carry several lines; each one stands
    on its own ("<where>: <what is wrong>; <what to do>"). A line that quotes user input never spans
    lines: line breaks and control characters in it are escaped.
    """

    def __init__(self, *lines: str, exit_code: int = EXIT_CODE_USER_ERROR) -> None:
        if not lines:
            raise ValueError("UserError needs at least one line")
        safe = tuple(escape_unsafe(line) for line in lines)
        super().__init__("\n".join(safe))
        self.lines: tuple[str, ...] = safe
        self.exit_code = exit_code
