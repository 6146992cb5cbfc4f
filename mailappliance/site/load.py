"""Loading a site file: find it from a SITE argument, read it within size, depth and alias limits, report
repeated keys, then check it (see checks/) into a Site, or raise one UserError line per problem."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from mailappliance.errors import UserError, is_unsafe_char
from mailappliance.site.checks import Checker, check_site
from mailappliance.site.model import Site
from mailappliance.site.values import SHOWN_WHOLE, describe_char, is_site_name, show_value

# A site with thousands of mailboxes is well under a MiB.
MAX_SITE_FILE_BYTES = 16 * 1024**2
# The schema nests four levels (aliases[0].to[0]); anchors save typing but must not multiply the data.
MAX_YAML_DEPTH = 32
MAX_YAML_ALIASES = 100
# No tag, the non-specific "!", or !!str to keep text that looks like a number as text.
_ALLOWED_TAGS = (None, "!", "tag:yaml.org,2002:str")


def resolve_site_file(site: str, inventory_root: Path) -> Path:
    """Map the SITE argument of a command to a site file: a site name or a path to a site file."""
    looks_like_path = os.sep in site or site.endswith((".yml", ".yaml")) or _is_file(Path(site))
    if looks_like_path:
        path = Path(site)
        if _is_dir(path):
            raise UserError(f"{site}: is a folder, not a site file; give a site name or the path of a site.yml")
        if not _is_file(path):
            raise UserError(f"{site}: no such site file; give a site name or the path of an existing site.yml")
        return path
    if not is_site_name(site):
        raise UserError(
            f"{show_value(site)} is neither a site name nor a path to a site file; use a name made of lowercase "
            "letters, digits and hyphens, or a path ending in .yml"
        )
    path = inventory_root / site / "site.yml"
    if not _is_file(path):
        raise UserError(
            f"{path}: no such file, so there is no site named {show_value(site)}; create it with "
            f"`mailappliance site new {site} --domain DOMAIN --hostname FQDN` or pass the path of a site file"
        )
    return path


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def load_site(path: Path) -> Site:
    """Read and validate a site file; raise UserError with one line per problem found."""
    display = str(path)
    try:
        with path.open("rb") as stream:
            content = stream.read(MAX_SITE_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"{display}: no such file; check the path of the site file") from None
    except IsADirectoryError:
        raise UserError(f"{display}: is a folder, not a site file; give the path of a site.yml") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"{display}: cannot read the site file ({reason}); check its path and permissions") from None
    if len(content) > MAX_SITE_FILE_BYTES:
        raise UserError(f"{display}: the file is larger than {MAX_SITE_FILE_BYTES // 1024**2} MiB; "
                        "a site file is YAML text of a few KiB, check that this is the right file")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{display}: cannot read the site file (byte {exc.start + 1} is not UTF-8); "
                        "save it as UTF-8 text") from None
    return parse_site(text, path)


def parse_site(text: str, path: Path, base_dir: Path | None = None) -> Site:
    """Validate site file content; `path` names the file in messages and, unless `base_dir` is given,
    anchors the relative paths in it."""
    location = path.resolve()
    bad = next((char for char in str(location) if is_unsafe_char(char)), None)
    if bad is not None:
        # The path is written into the inventory and names the site's files there.
        raise UserError(f"{path}: the path of the site file contains {describe_char(bad)}; "
                        "move it to a folder whose path has no control characters")
    checker = Checker(str(path), base_dir or location.parent)
    data, duplicates = _read_yaml(text, path)
    errors = [
        f"{path}: line {again}: key {show_value(key)} appears again (first at line {first}); keep only one of them"
        for key, first, again in duplicates
    ]
    site = check_site(checker, data, location)
    errors += checker.ordered_errors(data)
    if errors:
        raise UserError(*errors)
    assert site is not None
    return site


def _read_yaml(text: str, path: Path) -> tuple[Any, list[tuple[Any, int, int]]]:
    """The data of a YAML text and its repeated keys; any YAML problem is one UserError line."""
    loader: _SiteLoader | None = None
    try:
        loader = _SiteLoader(text)
        return loader.get_single_data(), loader.duplicates
    except yaml.reader.ReaderError as exc:
        # Raised for characters YAML does not allow at all (NUL, other control characters).
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise UserError(f"{path}: line {line}, column {column}: invalid YAML: the character U+{exc.character:04X} "
                        "is not allowed in a YAML file; remove it") from None
    except _LimitError as exc:
        where = f"line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}"
        raise UserError(f"{path}: {where}: {exc.problem}; {exc.fix}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(top level)"
        problem = exc.problem or exc.context or "unreadable YAML"
        raise UserError(f"{path}: {where}: invalid YAML: {problem}; fix the syntax at that position") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: (top level): invalid YAML: {exc}; fix the file's syntax") from None
    except RecursionError:
        raise UserError(f"{path}: (top level): the YAML nests too deeply to read; "
                        f"a site file needs no more than {MAX_YAML_DEPTH} levels") from None
    finally:
        if loader is not None:
            loader.dispose()


class _LimitError(yaml.MarkedYAMLError):
    """A YAML text that is well formed but beyond what a site file needs (depth, aliases)."""

    def __init__(self, problem: str, fix: str, mark: yaml.Mark) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.fix = fix


class _SiteLoader(yaml.SafeLoader):
    """A safe loader that records repeated mapping keys (PyYAML would silently overwrite them), bounds
    nesting and aliases, and reports values Python cannot build (a 5000-digit number, 2024-13-01) at their
    position."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[Any, int, int]] = []
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        mark = event.start_mark
        tag = getattr(event, "tag", None)
        # PyYAML's constructors for the other tags (!!set, !!timestamp, !!binary, ...) crash on some input,
        # and a site file holds only text, numbers, true/false, lists and mappings.
        if tag not in _ALLOWED_TAGS:
            shown = tag.replace("tag:yaml.org,2002:", "!!")[:SHOWN_WHOLE]
            raise _LimitError(f"the YAML tag {shown} is not used in site files",
                              "remove it (quote text that would read as a number: \"007\")", mark)
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise _LimitError(f"more than {MAX_YAML_ALIASES} aliases (*name)",
                                  "write the values out; a site file needs few anchors, if any", mark)
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _LimitError(f"nested more than {MAX_YAML_DEPTH} levels deep",
                                  "a site file nests at most a few levels (aliases[0].to[0])", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:
            # Python refuses int() of more than 4300 digits; datetime refuses 2024-13-01.
            digits = "digits" in str(exc)
            problem = "a number of more than 4300 digits" if digits else f"a value that cannot be read ({exc})"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    self.duplicates.append((key, seen[key], key_node.start_mark.line + 1))
                else:
                    seen[key] = key_node.start_mark.line + 1
            except TypeError:
                pass  # an unhashable key; construct_mapping below reports it as a YAML error
        return super().construct_mapping(node, deep=deep)
