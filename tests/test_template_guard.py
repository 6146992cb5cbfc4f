"""Every value a role template writes passes the `oneline` guard, and the guard refuses what could start a line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jinja2
import pytest
from ansible.errors import AnsibleFilterError
from jinja2 import nodes

from conftest import PROJECT_DIR

GUARDS = {"oneline", "oneline_lines"}
TEMPLATES = sorted((PROJECT_DIR / "roles").glob("*/templates/**/*.j2"))


def _load_guard_module():
    spec = importlib.util.spec_from_file_location("oneline", PROJECT_DIR / "plugins/filter/oneline.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


guard = _load_guard_module()


def unguarded_outputs(source: str) -> list[str]:
    """The `{{ }}` expressions of a template that do not end in a guard filter (local macro calls excepted)."""
    env = jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])
    tree = env.parse(source)
    macros = {macro.name for macro in tree.find_all(nodes.Macro)}
    found = []
    for output in tree.find_all(nodes.Output):
        for expr in output.nodes:
            if isinstance(expr, nodes.TemplateData):
                continue
            if isinstance(expr, nodes.Filter) and expr.name in GUARDS:
                continue
            if isinstance(expr, nodes.Call) and isinstance(expr.node, nodes.Name) and expr.node.name in macros:
                continue
            found.append(f"line {expr.lineno}: {type(expr).__name__}")
    return found


def test_templates_exist() -> None:
    assert len(TEMPLATES) > 20


@pytest.mark.parametrize("template", TEMPLATES, ids=[str(t.relative_to(PROJECT_DIR / "roles")) for t in TEMPLATES])
def test_every_output_is_guarded(template: Path) -> None:
    missing = unguarded_outputs(template.read_text())
    assert missing == [], f"{template}: end these expressions with `| oneline`: {missing}"


def test_the_check_finds_an_unguarded_value() -> None:
    assert unguarded_outputs("a = {{ value }}\nb = {{ value | oneline }}\n") == ["line 1: Name"]
    assert unguarded_outputs("{{ a ~ b | oneline }}") == ["line 1: Concat"]


@pytest.mark.parametrize("value", ["x\n@example.com", "x\r\ny", "a\x00b", "tab\there", "del\x7f", "nel\x85",
                                   "line\u2028sep", "para\u2029sep", "esc\x1b[1m", "end\n",
                                   "bidi\u202eoverride"])
def test_guard_refuses_control_characters(value: str) -> None:
    with pytest.raises(AnsibleFilterError, match="control character U\\+") as excinfo:
        guard.oneline(value)
    assert "\n" not in str(excinfo.value)


def test_guard_refuses_what_the_site_checks_refuse() -> None:
    # Every character the site model refuses is refused here too, so the two walls never disagree.
    from mailappliance.errors import is_unsafe_char

    for code in range(0x3000):
        char = chr(code)
        try:
            guard.oneline(f"a{char}b")
            refused = False
        except AnsibleFilterError:
            refused = True
        assert refused == is_unsafe_char(char), f"U+{code:04X}"


def test_guard_shortens_what_it_quotes() -> None:
    with pytest.raises(AnsibleFilterError) as excinfo:
        guard.oneline("secret" * 100 + "\n")
    assert len(str(excinfo.value)) < 300


@pytest.mark.parametrize("value, text", [("mail.example.com", "mail.example.com"), (25, "25"), (6.0, "6.0"),
                                         (True, "True"), ("quoted \"#;$ text", "quoted \"#;$ text")])
def test_guard_passes_single_values(value: object, text: str) -> None:
    assert guard.oneline(value) == text


@pytest.mark.parametrize("value", [None, ["a"], {"a": 1}])
def test_guard_refuses_collections(value: object) -> None:
    with pytest.raises(AnsibleFilterError, match="single value"):
        guard.oneline(value)


def test_lines_guard() -> None:
    policy = "version: STSv1\nmode: enforce\n"
    assert guard.oneline_lines(policy) == policy
    with pytest.raises(AnsibleFilterError):
        guard.oneline_lines("version: STSv1\r\nmode: enforce\n")
    with pytest.raises(AnsibleFilterError, match="end with a line feed"):
        guard.oneline_lines("version: STSv1")
