"""Every role documents exactly its defaults: meta/argument_specs.yml (main) and defaults/main.yml agree; what a role
needs from another it declares as a required option, which playbooks/site.yml passes from the owning role."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT_DIR

ROLES = sorted(path for path in (PROJECT_DIR / "roles").glob("*") if path.is_dir())


def load_mapping(path: Path) -> dict:
    data = yaml.safe_load(path.read_text()) if path.is_file() else None
    return data or {}


@pytest.mark.parametrize("role", ROLES, ids=[role.name for role in ROLES])
def test_argument_spec_options_equal_defaults(role: Path) -> None:
    spec_file = role / "meta/argument_specs.yml"
    assert spec_file.is_file(), f"{role.name}: every role needs meta/argument_specs.yml"
    main = load_mapping(spec_file).get("argument_specs", {}).get("main")
    assert main is not None, f"{spec_file}: no argument_specs.main entry point"
    options = main.get("options") or {}
    defaults = set(load_mapping(role / "defaults/main.yml"))
    assert sorted(defaults - set(options)) == [], f"{role.name}: defaults missing from argument_specs.yml"
    optional = {name for name, spec in options.items() if not spec.get("required")}
    assert sorted(optional - defaults) == [], f"{role.name}: optional argument_specs.yml options without a default"
    required = set(options) - optional
    assert sorted(required & defaults) == [], f"{role.name}: required options need no default"


def site_play_roles() -> dict[str, dict]:
    """Each role entry of playbooks/site.yml by role name: its parameters, without the role and tags keys."""
    play = yaml.safe_load((PROJECT_DIR / "playbooks/site.yml").read_text())[0]
    return {entry["role"]: {k: v for k, v in entry.items() if k not in ("role", "tags")} for entry in play["roles"]}


def role_variables() -> dict[str, str]:
    """Every variable a role declares, mapped to that role."""
    return {name: role.name for role in ROLES
            for name in (load_mapping(role / "meta/argument_specs.yml")["argument_specs"]["main"].get("options") or {})}


def test_site_playbook_runs_every_role() -> None:
    assert sorted(site_play_roles()) == sorted(role.name for role in ROLES)


@pytest.mark.parametrize("role", ROLES, ids=[role.name for role in ROLES])
def test_site_playbook_passes_exactly_the_required_options(role: Path) -> None:
    options = load_mapping(role / "meta/argument_specs.yml")["argument_specs"]["main"].get("options") or {}
    required = {name for name, spec in options.items() if spec.get("required")}
    # Besides those, only a collector of other roles' exports (postfix__dependent_maincf) may be passed.
    collectors = {name for name in options if "__dependent_" in name}
    passed = set(site_play_roles()[role.name])
    assert sorted(required - passed) == [], f"playbooks/site.yml: the {role.name} entry lacks required options"
    assert sorted(passed - required - collectors) == [], (
        f"playbooks/site.yml: the {role.name} entry passes optional values; a default belongs in the role")


@pytest.mark.parametrize("role", ROLES, ids=[role.name for role in ROLES])
def test_each_wired_value_names_another_roles_variable(role: Path) -> None:
    """No literal is copied into the wiring: each parameter is built from the variables of the role that owns it."""
    owners = role_variables()
    for name, value in site_play_roles()[role.name].items():
        used = set(re.findall(r"\b[a-z0-9]+__[a-z0-9_]+\b", str(value)))
        assert used, f"playbooks/site.yml: {name} is a literal; pass the owning role's variable"
        foreign = {owners.get(variable) for variable in used}
        assert None not in foreign, f"playbooks/site.yml: {name} uses a variable no role declares: {sorted(used)}"
        assert role.name not in foreign, f"playbooks/site.yml: {name} wires {role.name} to itself"
