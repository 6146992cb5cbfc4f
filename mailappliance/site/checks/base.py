"""The checker every section check writes to: problems collected with their field paths and ordered as the
file is, and the generic shapes (mapping, one-line text, list, size, score, whole number, networks, file)."""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from pathlib import Path
from collections.abc import Callable
from typing import Any

from mailappliance.errors import is_unsafe_char
from mailappliance.site.model import MAX_NETWORKS, SPAM_SCORE_MAX
from mailappliance.site.values import (
    MAX_PATH_LENGTH,
    MAX_SHORT_TEXT_LENGTH,
    SHOWN_CHARACTERS,
    SHOWN_WHOLE,
    SIZE_RE,
    describe_char,
    show_value,
    size_to_bytes,
)


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def key_name(key: Any) -> str:
    """A mapping key as a field path segment; unknown keys may be anything YAML allows, at any length."""
    if not isinstance(key, str):
        return show_value(key)
    return key if len(key) <= SHOWN_WHOLE else key[:SHOWN_CHARACTERS] + "…"


def file_position(data: Any, path: str) -> tuple[int, ...]:
    """Where the field at `path` (as join() builds it) is written in `data`: per level, the key's position in
    its mapping (-1 when absent) or the list index."""
    position: list[int] = []
    rest = path
    while rest:
        if isinstance(data, list) and (match := re.match(r"\[(\d+)\]", rest)):
            index = int(match.group(1))
            position.append(index)
            data = data[index] if index < len(data) else None
            rest = rest[match.end():]
        elif isinstance(data, dict):
            rest = rest.removeprefix(".")
            # Keys may hold "." or "[" themselves, so the longest key the path goes on from is the one.
            names = [key_name(key) for key in data]
            found = [n for n, name in enumerate(names)
                     if rest.startswith(name) and rest[len(name):len(name) + 1] in ("", ".", "[")]
            if not found:
                position.append(-1)
                break
            number = max(found, key=lambda n: len(names[n]))
            position.append(number)
            data = list(data.values())[number]
            rest = rest[len(names[number]):]
        else:
            break
    return tuple(position)


class Checker:
    """Collects every problem of one site file, with its field path; the section checks walk the raw YAML
    data through its generic shapes and build the model from what is valid."""

    def __init__(self, display: str, base_dir: Path) -> None:
        self.display = display
        self.base_dir = base_dir
        self.errors: list[tuple[str, str]] = []

    def error(self, path: str, problem: str, fix: str) -> None:
        self.errors.append((path, f"{self.display}: {path or '(top level)'}: {problem}; {fix}"))

    def ordered_errors(self, data: Any) -> list[str]:
        """Messages in file order: the field path is followed through the data, by the position of each key as
        written (missing keys first) and each list index; messages about one field keep the order they came in."""
        return [line for _, line in sorted(self.errors, key=lambda item: file_position(data, item[0]))]

    # -- generic shapes -------------------------------------------------------------------------------

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...], example: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {show_value(value)}", f"write it as {example}")
            return None
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(key_name(key), allowed, n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                self.error(join(path, key_name(key)), "unknown key", f"{hint}allowed keys are {', '.join(allowed)}")
        return value

    def present(self, data: dict[str, Any], key: str, path: str, required: bool, fix: str) -> tuple[Any, str]:
        """The value at `key` (None when absent) and its field path; an absent required key is an error."""
        value = data.get(key)
        where = join(path, key)
        if value is None and required:
            self.error(where, "is required", fix)
        return value, where

    def string(self, value: Any, where: str, fix: str, limit: int, what: str = "text") -> str | None:
        """`value` when it is text that stays on one line of any file it is written to: no control character
        or line break, no whitespace around it, at most `limit` characters. Otherwise record why not."""
        if not isinstance(value, str) or not value.strip():
            self.error(where, f"expected {what}, got {show_value(value)}", fix)
            return None
        bad = next((char for char in value if is_unsafe_char(char)), None)
        if bad is not None:
            self.error(where, f"{show_value(value)} contains {describe_char(bad)}", fix)
            return None
        if value != value.strip():
            self.error(where, f"{show_value(value)} has whitespace at its start or end", "remove it")
            return None
        if len(value) > limit:
            self.error(where, f"{show_value(value)} is longer than {limit} characters", fix)
            return None
        return value

    def text(self, data: dict[str, Any], key: str, path: str, required: bool, fix: str, limit: int) -> str | None:
        value, where = self.present(data, key, path, required, fix)
        if value is None:
            return None
        return self.string(value, where, fix, limit)

    def items(self, data: dict[str, Any], key: str, path: str, required: bool, fix: str) -> list[Any] | None:
        value, where = self.present(data, key, path, required, fix)
        if value is None:
            return None
        if not isinstance(value, list):
            self.error(where, f"expected a list, got {show_value(value)}", fix)
            return None
        if required and not value:
            self.error(where, "the list is empty", fix)
        return value

    def size(self, data: dict[str, Any], key: str, path: str, default: str,
             bounds: tuple[str, str]) -> tuple[str, int] | None:
        value = data.get(key)
        if value is None:
            return default, size_to_bytes(default)
        where = join(path, key)
        low, high = bounds
        fix = f"use a whole number followed by K, M, G or T, from {low} to {high}, e.g. {default}"
        if not isinstance(value, str):
            self.error(where, f"{show_value(value)} is not a valid size", fix)
            return None
        text = self.string(value, where, fix, MAX_SHORT_TEXT_LENGTH)
        if text is None:
            return None
        normal = text.upper()
        if not SIZE_RE.fullmatch(normal):
            self.error(where, f"{show_value(value)} is not a valid size", fix)
            return None
        if not size_to_bytes(low) <= size_to_bytes(normal) <= size_to_bytes(high):
            self.error(where, f"{show_value(value)} is out of range", fix)
            return None
        return normal, size_to_bytes(normal)

    def score(self, data: dict[str, Any], key: str, path: str, default: float) -> float | None:
        value = data.get(key)
        if value is None:
            return default
        number = (isinstance(value, (int, float)) and not isinstance(value, bool)
                  and not (isinstance(value, float) and math.isnan(value)))
        if not number or not 0 < value <= SPAM_SCORE_MAX:
            problem = "is out of range" if number and value > 0 else "is not a positive score"
            self.error(join(path, key), f"{show_value(value)} {problem}",
                       f"use a number greater than 0 and at most {SPAM_SCORE_MAX:g}, e.g. {default:g}")
            return None
        return float(value)

    def local_file(self, value: Any, path: str, fix: str) -> Path | None:
        """A controller file named relative to the site file; must exist and be readable."""
        text = self.string(value, path, fix, MAX_PATH_LENGTH, what="a file path")
        if text is None:
            return None
        try:
            file = (self.base_dir / text).resolve()
            if not file.exists():
                self.error(path, f"{show_value(value)} does not exist",
                           "give a path relative to the site file's folder")
                return None
            if not file.is_file():
                self.error(path, f"{show_value(value)} is not a regular file", fix)
                return None
            with file.open("rb") as handle:
                handle.read(1)
        except OSError as exc:
            self.error(path, f"{show_value(value)} is not readable ({exc.strerror or type(exc).__name__})",
                       "make it readable by the user running mailappliance")
            return None
        # The absolute path is written into the inventory, so the folders above the site file count too.
        bad = next((char for char in str(file) if is_unsafe_char(char)), None)
        if bad is not None:
            self.error(path, f"the full path {show_value(str(file))} contains {describe_char(bad)}",
                       "move the site and its files to a folder whose path has no control characters")
            return None
        return file

    def ip_list(self, value: Any, where: str, fix: str, most: tuple[int, str, str],
                parse: Callable[[str, Any], str | None]) -> tuple[str, ...] | None:
        """A list of at most most[0] entries (most[1] names them, most[2] is the fix for too many); `parse` checks
        one entry at its path and returns its canonical text, or None after reporting what is wrong."""
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(where, f"expected a list, got {show_value(value)}", fix)
            return None
        limit, noun, fewer = most
        if len(value) > limit:
            self.error(where, f"lists {len(value)} {noun}", fewer)
            return None
        result = [parse(join(where, index), item) for index, item in enumerate(value)]
        return tuple(entry for entry in result if entry is not None) if None not in result else None

    def ip_text(self, item: Any, where: str, fix: str, what: str) -> str | None:
        """An entry of an address list as text: a string the site model accepts, without an IPv6 zone index
        (fe80::1%eth0), which no file the appliance writes can use; None after reporting `item` is not `what`."""
        if not isinstance(item, str):
            self.error(where, f"{show_value(item)} is not {what}", fix)
            return None
        text = self.string(item, where, fix, MAX_SHORT_TEXT_LENGTH)
        return text if text is None or "%" not in text else ""

    def networks(self, value: Any, where: str, fix: str) -> tuple[str, ...] | None:
        """A list of IP addresses or CIDR networks, in canonical form (e.g. 192.0.2.0/24)."""
        def parse(item_where: str, item: Any) -> str | None:
            text = self.ip_text(item, item_where, fix, "an address or network")
            if text is None:
                return None
            try:
                network = ipaddress.ip_network(text, strict=False) if text else None
            except ValueError:
                network = None
            if network is None:
                self.error(item_where, f"{show_value(item)} is not an IP address or network",
                           "write an address (192.0.2.50, 2001:db8::50) or a network (192.0.2.0/24)")
                return None
            if network.prefixlen == 0:
                self.error(item_where, f"{show_value(item)} is every address",
                           "name the hosts or networks you mean; the whole internet cannot be trusted")
                return None
            return str(network)
        return self.ip_list(value, where, fix, (MAX_NETWORKS, "networks",
                                                f"list at most {MAX_NETWORKS}; use wider prefixes"), parse)

    def whole_number(self, data: dict[str, Any], key: str, path: str, default: int, bounds: tuple[int, int],
                     what: str) -> int | None:
        value = data.get(key, default)
        low, high = bounds
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            number = isinstance(value, int) and not isinstance(value, bool)
            problem = "is out of range" if number else "is not a whole number"
            self.error(join(path, key), f"{show_value(value)} {problem}",
                       f"use {what} from {low} to {high}, e.g. {default}")
            return None
        return value
