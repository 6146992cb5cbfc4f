"""Packages import downward (STYLE.md): CLI → commands → (audit, dns) → controls, site model, inventory →
helpers. Read from the source, so an import inside a function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import PROJECT_DIR

LIBRARIES = ("mailappliance.audit", "mailappliance.dns", "mailappliance.controls", "mailappliance.site")
CLI = ("mailappliance.context", "mailappliance.cli", "mailappliance.commands")
# (importing packages, packages they must not import, why)
RULES = (
    (("mailappliance.dns",), ("mailappliance.audit",),
     "dns is below audit; what both need lives in mailappliance.controls"),
    (("mailappliance.controls", "mailappliance.site", "mailappliance.inventory"),
     ("mailappliance.audit", "mailappliance.dns"),
     "controls, the site model and the inventory writer are below audit and dns"),
    (LIBRARIES, CLI, "a library package gets what it needs from the CLI as arguments, never its context"),
)
COMMANDS = "mailappliance.commands"


def within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(root: Path, dotted: str) -> str:
    """The longest leading part of `dotted` that is a module or package under `root`."""
    parts = dotted.split(".")
    while parts and not (root.joinpath(*parts).with_suffix(".py").is_file()
                         or root.joinpath(*parts, "__init__.py").is_file()):
        parts.pop()
    return ".".join(parts) or dotted


def imports(root: Path, path: Path) -> set[str]:
    """The modules of the project that a file imports, wherever in the file the import is."""
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            # `from package import name` imports the module package.name when there is one.
            candidates = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(resolve(root, c) for c in candidates if within(c, ("mailappliance",)))
    return found


def violations(root: Path) -> list[str]:
    """Every import under root/mailappliance/ that breaks a rule, as "importer imports imported: why"."""
    found = []
    for path in sorted((root / "mailappliance").rglob("*.py")):
        importer = module_name(root, path)
        for imported in sorted(imports(root, path)):
            for importers, forbidden, why in RULES:
                if within(importer, importers) and within(imported, forbidden):
                    found.append(f"{importer} imports {imported}: {why}")
            if (within(importer, (COMMANDS,)) and within(imported, (COMMANDS,)) and importer != COMMANDS
                    and imported != importer):
                found.append(f"{importer} imports {imported}: commands do not import each other; "
                             "move what they share into a library module")
    return found


def test_packages_import_downward() -> None:
    found = violations(PROJECT_DIR)
    assert not found, "imports against the layering:\n" + "\n".join(found)


def test_the_scan_sees_the_project_imports() -> None:
    root = PROJECT_DIR
    assert "mailappliance.controls.catalogue" in imports(root, root / "mailappliance/dns/check.py")
    assert "mailappliance.runner" in imports(root, root / "mailappliance/commands/deploy.py")


def write_tree(root: Path, files: dict[str, str]) -> None:
    base = {"mailappliance/__init__.py": "", "mailappliance/context.py": "", "mailappliance/cli.py": "",
            "mailappliance/audit/__init__.py": "", "mailappliance/audit/report.py": "",
            "mailappliance/dns/__init__.py": "", "mailappliance/dns/plan.py": "",
            "mailappliance/controls/__init__.py": "", "mailappliance/controls/model.py": "",
            "mailappliance/site/__init__.py": "", "mailappliance/site/checks/__init__.py": "",
            "mailappliance/site/checks/tls.py": "", "mailappliance/commands/__init__.py": "",
            "mailappliance/commands/site.py": "", "mailappliance/commands/demo.py": ""}
    for name, text in {**base, **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("mailappliance/dns/plan.py", "from mailappliance.audit import report\n",
     "mailappliance.dns.plan imports mailappliance.audit.report"),
    ("mailappliance/dns/plan.py", "def plan():\n    from ..audit.report import x\n",
     "mailappliance.dns.plan imports mailappliance.audit.report"),
    ("mailappliance/audit/report.py", "from mailappliance.context import AppContext\n",
     "mailappliance.audit.report imports mailappliance.context"),
    ("mailappliance/site/checks/tls.py", "import mailappliance.cli\n",
     "mailappliance.site.checks.tls imports mailappliance.cli"),
    ("mailappliance/controls/model.py", "from mailappliance import commands\n",
     "mailappliance.controls.model imports mailappliance.commands"),
    ("mailappliance/controls/model.py", "from mailappliance.dns import plan\n",
     "mailappliance.controls.model imports mailappliance.dns.plan"),
    ("mailappliance/commands/demo.py", "from mailappliance.commands.site import create_site\n",
     "mailappliance.commands.demo imports mailappliance.commands.site"),
    ("mailappliance/commands/demo.py", "from . import site\n",
     "mailappliance.commands.demo imports mailappliance.commands.site"),
])
def test_a_bad_import_is_caught(tmp_path: Path, module: str, source: str, expected: str) -> None:
    write_tree(tmp_path, {module: source})
    found = violations(tmp_path)
    assert len(found) == 1 and found[0].startswith(expected + ":"), found


def test_allowed_imports_pass(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "mailappliance/audit/report.py": "from mailappliance.controls import model\nfrom mailappliance.dns import x\n",
        "mailappliance/dns/plan.py": "from mailappliance.controls.model import x\nfrom mailappliance.site import y\n",
        "mailappliance/commands/demo.py": "from mailappliance.context import AppContext\n",
    })
    assert violations(tmp_path) == []
