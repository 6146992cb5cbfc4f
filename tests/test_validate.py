"""`mailappliance validate SITE`."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import certificates
from clirunner import assert_clean_failure, run_cli
from conftest import FULL_SITE, MINIMAL_SITE, write_site
from mailappliance.exit_codes import EXIT_CODE_USER_ERROR


def test_valid_site_file(full_site: Path, site_dir: Path) -> None:
    certificates.write_tls(site_dir)
    result = run_cli("validate", "site.yml")
    assert result.exit_code == 0
    assert result.stdout == "site.yml: valid: site molecule, 2 domains, 2 mailboxes, 2 aliases\n"


def test_site_by_name_under_the_inventory_root(site_dir: Path) -> None:
    (site_dir / "sites" / "molecule").mkdir(parents=True)
    (site_dir / "sites" / "molecule" / "eicar.hdb").write_text("x\n")
    write_site(site_dir / "sites" / "molecule", MINIMAL_SITE)
    result = run_cli("--inventory-root", "sites", "validate", "molecule")
    assert result.exit_code == 0, result.output
    result = run_cli("validate", "molecule", env={"MAILAPPLIANCE_INVENTORY_ROOT": "sites"})
    assert result.exit_code == 0, result.output


def test_name_inside_must_match_the_folder(site_dir: Path) -> None:
    (site_dir / "inventories" / "other").mkdir(parents=True)
    (site_dir / "inventories" / "other" / "eicar.hdb").write_text("x\n")
    write_site(site_dir / "inventories" / "other", MINIMAL_SITE)
    errors = assert_clean_failure(run_cli("validate", "other"), EXIT_CODE_USER_ERROR)
    assert errors == ['inventories/other/site.yml: site: "molecule" does not match its folder "other"; '
                      "set site: other, or move the file to inventories/molecule/"]


def test_every_problem_is_one_error_line(site_dir: Path) -> None:
    write_site(site_dir, dict(MINIMAL_SITE, site="Bad", hostname="mail"))
    errors = assert_clean_failure(run_cli("validate", "site.yml"), EXIT_CODE_USER_ERROR)
    assert errors == [
        'site.yml: site: "Bad" is not a valid site name; use 1-63 lowercase letters, digits and hyphens, '
        "starting with a letter, e.g. site: example",
        'site.yml: hostname: "mail" is not a fully qualified domain name; use the appliance\'s full DNS name, '
        "e.g. mail.example.com",
    ]


def test_unknown_site_name(site_dir: Path) -> None:
    errors = assert_clean_failure(run_cli("validate", "nosuch"), EXIT_CODE_USER_ERROR)
    assert errors == ['inventories/nosuch/site.yml: no such file, so there is no site named "nosuch"; create it '
                      "with `mailappliance site new nosuch --domain DOMAIN --hostname FQDN` or pass the path of "
                      "a site file"]


def test_missing_site_file(site_dir: Path) -> None:
    errors = assert_clean_failure(run_cli("validate", "missing/site.yml"), EXIT_CODE_USER_ERROR)
    assert errors == ["missing/site.yml: no such site file; give a site name or the path of an existing site.yml"]


def _many_aliases() -> bytes:
    lines = ["site: molecule", "x0: &a0 [1]"] + [f"x{n}: &a{n} [*a{n - 1}, *a{n - 1}]" for n in range(1, 60)]
    return "\n".join(lines).encode() + b"\n"


UNREADABLE = [
    pytest.param(b"site: a\x00b\n",
                 "site.yml: line 1, column 8: invalid YAML: the character U+0000 is not allowed in a YAML file; "
                 "remove it",
                 id="nul-byte"),
    pytest.param(b"[" * 50000,
                 "site.yml: line 1, column 33: nested more than 32 levels deep; "
                 "a site file nests at most a few levels (aliases[0].to[0])",
                 id="50000-brackets"),
    pytest.param(_many_aliases(),
                 "site.yml: line 53, column 12: more than 100 aliases (*name); "
                 "write the values out; a site file needs few anchors, if any",
                 id="billion-laughs"),
    pytest.param(b"site: " + b"9" * 5000 + b"\n",
                 "site.yml: line 1, column 7: invalid YAML: a number of more than 4300 digits; "
                 "fix the syntax at that position",
                 id="5000-digit-number"),
    pytest.param(b"site: 2024-13-01\n",
                 "site.yml: line 1, column 7: invalid YAML: a value that cannot be read (month must be in 1..12); "
                 "fix the syntax at that position",
                 id="impossible-date"),
    pytest.param(b"site: !!timestamp soon\n",
                 "site.yml: line 1, column 7: the YAML tag !!timestamp is not used in site files; "
                 'remove it (quote text that would read as a number: "007")',
                 id="explicit-tag"),
    pytest.param(b"site: molecule\n? [a]\n: b\n",
                 "site.yml: line 2, column 3: invalid YAML: found unhashable key; fix the syntax at that position",
                 id="list-as-key"),
    pytest.param(bytes(range(256)) * 4,
                 "site.yml: cannot read the site file (byte 129 is not UTF-8); save it as UTF-8 text",
                 id="binary-garbage"),
]


@pytest.mark.parametrize(("content", "message"), UNREADABLE)
def test_unreadable_files_are_one_line(site_dir: Path, content: bytes, message: str) -> None:
    (site_dir / "site.yml").write_bytes(content)
    assert assert_clean_failure(run_cli("validate", "site.yml"), EXIT_CODE_USER_ERROR) == [message]


def test_nul_in_a_file_path_is_one_line_per_field(site_dir: Path) -> None:
    write_site(site_dir, dict(MINIMAL_SITE, tls={"source": "provided", "cert": "a\x00b", "key": "tls/key.pem"},
                              antivirus={"local_databases": ["eicar\x00.hdb"]}))
    errors = assert_clean_failure(run_cli("validate", "site.yml"), EXIT_CODE_USER_ERROR)
    assert errors == [
        'site.yml: antivirus.local_databases[0]: "eicar\\u0000.hdb" contains a NUL character (U+0000); '
        "list ClamAV database files relative to the site file's folder, e.g. [local.hdb]",
        'site.yml: tls.cert: "a\\u0000b" contains a NUL character (U+0000); give the path of the certificate chain '
        "(leaf first) in PEM format, relative to the site file's folder",
    ]


def test_huge_hex_numbers_and_odd_keys_are_plain_messages(site_dir: Path) -> None:
    (site_dir / "site.yml").write_text("site: 0x" + "f" * 20000 + "\n1: x\nnull: y\n")
    errors = assert_clean_failure(run_cli("validate", "site.yml"), EXIT_CODE_USER_ERROR)
    assert "site.yml: site: expected text, got a number of more than 20 digits; use 1-63 lowercase letters, digits " \
           "and hyphens, starting with a letter, e.g. site: example" in errors
    assert [line.split(":")[1].strip() for line in errors if "unknown key" in line] == ["1", "null"]


def test_a_folder_is_not_a_site_file(site_dir: Path) -> None:
    (site_dir / "folder.yml").mkdir()
    errors = assert_clean_failure(run_cli("validate", "folder.yml"), EXIT_CODE_USER_ERROR)
    assert errors == ["folder.yml: is a folder, not a site file; give a site name or the path of a site.yml"]


def test_an_oversized_file_is_not_read(site_dir: Path) -> None:
    (site_dir / "site.yml").write_bytes(b"# " + b"x" * (16 * 1024**2) + b"\n")
    errors = assert_clean_failure(run_cli("validate", "site.yml"), EXIT_CODE_USER_ERROR)
    assert errors == ["site.yml: the file is larger than 16 MiB; a site file is YAML text of a few KiB, "
                      "check that this is the right file"]


def test_a_site_folder_whose_path_breaks_lines(site_dir: Path) -> None:
    folder = site_dir / "a\nb"
    folder.mkdir()
    write_site(folder, MINIMAL_SITE)
    errors = assert_clean_failure(run_cli("validate", "a\nb/site.yml"), EXIT_CODE_USER_ERROR)
    assert errors == ["a\\u000ab/site.yml: the path of the site file contains a line break (U+000A); "
                      "move it to a folder whose path has no control characters"]


def test_random_damage_never_ends_in_a_traceback(site_dir: Path) -> None:
    """Fixed-seed mutations of a complete site file: each one validates or fails with clean one-line errors."""
    certificates.write_tls(site_dir)
    valid = FULL_SITE
    pieces = ["\n", "\x00", "\t", "'", '"', "#", ";", "[", "]", "{", "}", ": ", "- ", "&a ", "*a", "!!set ", "<<: ",
              "? ", "|", "0x" + "f" * 50, "9" * 30, ".nan", ".inf", "~", "yes", "2024-02-30", "\\u2028", "---\n"]
    generator = random.Random(1)
    for _ in range(150):
        text = valid
        for _ in range(generator.randint(1, 3)):
            at = generator.randrange(len(text) + 1)
            if generator.random() < 0.6:
                text = text[:at] + generator.choice(pieces) + text[at:]
            else:
                text = text[:at] + text[at + generator.randint(1, 8):]
        (site_dir / "site.yml").write_text(text)
        result = run_cli("validate", "site.yml")
        if result.exit_code != 0:
            assert_clean_failure(result, EXIT_CODE_USER_ERROR)
