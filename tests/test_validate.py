"""`mailappliance validate SITE`."""

from __future__ import annotations

from pathlib import Path

from clirunner import assert_clean_failure, run_cli
from conftest import MINIMAL_SITE, write_site
from mailappliance.exit_codes import EXIT_CODE_USER_ERROR


def test_valid_site_file(full_site: Path) -> None:
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
