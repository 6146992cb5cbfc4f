"""Documentation that must not drift: generated role READMEs, the example customer site, paths in the docs."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import ipaddress
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from yamllint import linter
from yamllint.config import YamlLintConfig

from clirunner import run_cli
from conftest import PROJECT_DIR
from mailappliance.site import Site, load_site

EXAMPLE_DIR = PROJECT_DIR / "inventories" / "example"
ROLES = sorted(path for path in (PROJECT_DIR / "roles").iterdir() if path.is_dir())
# RFC 2606 and RFC 6761 names, and the RFC 5737 and RFC 3849 documentation networks.
DOCUMENTATION_DOMAINS = ("example.com", "example.net", "example.org", "example", "test", "invalid")
DOCUMENTATION_NETWORKS = tuple(ipaddress.ip_network(net) for net in
                               ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"))


def load_generator() -> ModuleType:
    """scripts/role-readme as a module (the script has no .py suffix, so it is loaded by path)."""
    path = PROJECT_DIR / "scripts" / "role-readme"
    loader = importlib.machinery.SourceFileLoader("role_readme", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("role_readme", loader))
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_generator()


@pytest.fixture(scope="module")
def example() -> Site:
    return load_site(EXAMPLE_DIR / "site.yml")


@pytest.mark.parametrize("role", ROLES, ids=[role.name for role in ROLES])
def test_role_readme_is_generated_from_the_role(generator: ModuleType, role: Path) -> None:
    readme = role / "README.md"
    hint = f"run `{generator.COMMAND}` to refresh it"
    assert readme.is_file(), f"roles/{role.name}/README.md is missing; {hint}"
    assert readme.read_text() == generator.render_readme(role), f"roles/{role.name}/README.md is out of date; {hint}"


@pytest.mark.parametrize("role", ROLES, ids=[role.name for role in ROLES])
def test_role_readme_lists_every_variable_with_its_default(generator: ModuleType, role: Path) -> None:
    readme = generator.render_readme(role)
    for name, text in generator.default_texts((role / "defaults/main.yml").read_text()).items():
        assert f"\n{text}\n" in readme, f"{role.name}: {name} missing from its README"


def test_defaults_are_quoted_as_written() -> None:
    text = ('---\n# Intro.\n\n# One.\nrole__one: "{{ x }}"\n\n# Two lines.\nrole__two:\n  - a   # kept\n'
            '  - b\n\n# Three.\nrole__three: {}\n')
    assert load_generator().default_texts(text) == {
        "role__one": 'role__one: "{{ x }}"', "role__two": "role__two:\n  - a   # kept\n  - b",
        "role__three": "role__three: {}"}


def test_example_site_validates_with_the_cli() -> None:
    result = run_cli("--inventory-root", str(PROJECT_DIR / "inventories"), "validate", "example")
    assert result.exit_code == 0, result.output
    assert result.stdout == "example: valid: site example, 2 domains, 3 mailboxes, 3 aliases\n"


def test_example_site_shows_most_sections() -> None:
    text = (EXAMPLE_DIR / "site.yml").read_text()
    for key in ("host", "domains", "mailboxes", "aliases", "tls", "spam", "antivirus", "dns", "login_protection",
                "trusted_relays"):
        assert re.search(rf"^{key}:", text, re.MULTILINE), f"inventories/example/site.yml: no {key}: section"


def test_example_site_passes_yamllint() -> None:
    config = YamlLintConfig(file=str(PROJECT_DIR / ".yamllint"))
    problems = [str(problem) for problem in linter.run((EXAMPLE_DIR / "site.yml").read_text(), config)]
    assert problems == []


def test_example_site_names_only_documentation_domains_and_addresses(example: Site) -> None:
    def documentation_name(name: str) -> bool:
        return any(name == domain or name.endswith("." + domain) for domain in DOCUMENTATION_DOMAINS)

    addresses = ([example.admin_contact, example.dns.dmarc_rua, example.dns.tlsrpt_rua]
                 + [mailbox.address for mailbox in example.mailboxes]
                 + [address for alias in example.aliases for address in (alias.address, *alias.to)])
    names = [example.hostname, *(domain.name for domain in example.domains),
             *(address.rpartition("@")[2] for address in addresses),
             re.sub(r"^https?://([^/:]+).*", r"\1", example.antivirus.mirror_url)]
    assert [name for name in names if not documentation_name(name)] == []
    networks = [example.host.address, example.dns.ipv4, example.dns.ipv6, *example.login_protection.allow,
                *example.trusted_relays]
    outside = [net for net in networks if not any(
        ipaddress.ip_network(net).subnet_of(doc) for doc in DOCUMENTATION_NETWORKS
        if doc.version == ipaddress.ip_network(net).version)]
    assert outside == []


def _folder_files(folder: Path) -> list[str]:
    """The files of `folder` git would commit (tracked or not ignored); every file there without git."""
    if shutil.which("git") is None or not (PROJECT_DIR / ".git").exists():
        return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", str(folder)],
                            cwd=PROJECT_DIR, capture_output=True, text=True, check=True).stdout.split()
    return sorted(str((PROJECT_DIR / path).relative_to(folder)) for path in listed)


def test_example_folder_holds_the_site_file_and_nothing_secret(example: Site) -> None:
    assert example.tls.key is None, "the example must not ship a private key"
    named = [path for path in (example.tls.cert, *example.antivirus.local_databases) if path is not None]
    allowed = {"site.yml", *(str(path.relative_to(EXAMPLE_DIR)) for path in named)}
    assert set(_folder_files(EXAMPLE_DIR)) <= allowed


@pytest.mark.skipif(shutil.which("git") is None or not (PROJECT_DIR / ".git").exists(), reason="not a git checkout")
@pytest.mark.parametrize("path", ["hosts.yml", "group_vars/all/site.yml", "group_vars/all/vault.yml", ".vault-pass",
                                  "published/mail.example.com/tls/cert.pem"])
def test_generated_site_files_stay_out_of_git(path: str) -> None:
    for site in ("example", "acme"):
        ignored = subprocess.run(["git", "check-ignore", "--quiet", "--no-index", f"inventories/{site}/{path}"],
                                 cwd=PROJECT_DIR, check=False)
        assert ignored.returncode == 0, f"inventories/{site}/{path} is not ignored by .gitignore"
    kept = subprocess.run(["git", "check-ignore", "--quiet", "--no-index", "inventories/example/site.yml"],
                          cwd=PROJECT_DIR, check=False)
    assert kept.returncode == 1, "inventories/example/site.yml must not be ignored"


def test_paths_named_in_the_architecture_notes_exist() -> None:
    text = (PROJECT_DIR / "docs" / "architecture.md").read_text()
    tops = "|".join(("mailappliance", "roles", "playbooks", "plugins", "tests", "templates", "scripts", "docs"))
    # Paths in running text, code spans and the diagram; of one with a placeholder (test_<verb>.py), the folder.
    named = set()
    for match in re.finditer(rf"(?<![\w./<>-])(?:{tops})/[\w./-]*", text):
        path = match.group().rstrip(".,")
        named.add(path[:path.rfind("/") + 1] if text[match.end():match.end() + 1] == "<" else path)
    assert named, "docs/architecture.md names no project paths"
    assert sorted(path for path in named if not (PROJECT_DIR / path).exists()) == []
