"""Every role documents exactly its defaults: meta/argument_specs.yml (main) and defaults/main.yml agree."""

from __future__ import annotations

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
    options = set(main.get("options") or {})
    defaults = set(load_mapping(role / "defaults/main.yml"))
    assert sorted(defaults - options) == [], f"{role.name}: defaults missing from argument_specs.yml"
    assert sorted(options - defaults) == [], f"{role.name}: argument_specs.yml options without a default"
