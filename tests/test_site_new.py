"""`mailappliance site new NAME`: a starter site that validates, renders and has one mailbox."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clirunner import assert_clean_failure, run_cli
from mailappliance import starter
from mailappliance.context import AppContext
from mailappliance.errors import UserError
from mailappliance.exit_codes import EXIT_CODE_USER_ERROR
from mailappliance.site import load_site
from mailappliance.starter import StarterAnswers


def test_new_site_writes_a_valid_site_and_its_inventory(site_dir: Path) -> None:
    result = run_cli("site", "new", "acme", "--domain", "acme.test", "--domain", "Beta.test",
                     "--hostname", "mail.acme.test")
    assert result.exit_code == 0, result.output
    site = load_site(Path("inventories/acme/site.yml"))
    assert [d.name for d in site.domains] == ["acme.test", "beta.test"]
    assert site.admin_contact == "postmaster@acme.test"
    assert [m.address for m in site.mailboxes] == ["postmaster@acme.test"]
    assert site.tls.source == "self-signed"
    assert (site.host.address, site.host.connection) == ("mail.acme.test", "ssh")
    assert site.antivirus.local_databases == (site_dir / "inventories/acme/eicar.hdb",)
    for name in ("hosts.yml", "group_vars/all/site.yml", "group_vars/all/vault.yml", ".vault-pass"):
        assert (site_dir / "inventories/acme" / name).is_file()
    assert "created inventories/acme/site.yml" in result.stdout
    password_lines = [line for line in result.stdout.splitlines() if line.startswith("  postmaster@acme.test")]
    assert len(password_lines) == 1 and len(password_lines[0].split()[1]) >= 24


def test_generated_passwords_are_printed_only_once(site_dir: Path) -> None:
    run_cli("site", "new", "acme", "--domain", "acme.test", "--hostname", "mail.acme.test")
    again = run_cli("render", "acme", "--no-preview")
    assert again.exit_code == 0, again.output
    assert "password" not in again.stdout.lower()


def test_hosted_admin_gets_the_mailbox_and_podman_hosts(site_dir: Path) -> None:
    result = run_cli("site", "new", "lab", "--domain", "lab.test", "--hostname", "mail.lab.test",
                     "--admin", "ops@lab.test", "--host", "lab-box", "--connection", "podman")
    assert result.exit_code == 0, result.output
    site = load_site(Path("inventories/lab/site.yml"))
    assert site.admin_contact == "ops@lab.test"
    assert [m.address for m in site.mailboxes] == ["ops@lab.test"]
    hosts = yaml.safe_load((site_dir / "inventories/lab/hosts.yml").read_text())
    assert hosts["all"]["children"]["mailappliance"]["hosts"]["mail.lab.test"] == {
        "ansible_host": "lab-box", "ansible_user": "root", "ansible_connection": "mailappliance_podman"}


def test_external_admin_keeps_a_postmaster_mailbox(site_dir: Path) -> None:
    result = run_cli("site", "new", "acme", "--domain", "acme.test", "--hostname", "mail.acme.test",
                     "--admin", "boss@elsewhere.example", "--host", "192.0.2.7")
    assert result.exit_code == 0, result.output
    site = load_site(Path("inventories/acme/site.yml"))
    assert site.admin_contact == "boss@elsewhere.example"
    assert [m.address for m in site.mailboxes] == ["postmaster@acme.test"]
    assert site.host.address == "192.0.2.7"


def test_existing_site_is_never_replaced(site_dir: Path) -> None:
    run_cli("site", "new", "acme", "--domain", "acme.test", "--hostname", "mail.acme.test")
    before = (site_dir / "inventories/acme/site.yml").read_bytes()
    errors = assert_clean_failure(
        run_cli("site", "new", "acme", "--domain", "other.test", "--hostname", "mail.other.test"), EXIT_CODE_USER_ERROR)
    assert errors == ["inventories/acme/site.yml: already exists; edit it, or choose another site name"]
    assert (site_dir / "inventories/acme/site.yml").read_bytes() == before


def test_bad_answers_are_all_reported_and_nothing_is_written(site_dir: Path) -> None:
    result = run_cli("site", "new", "Acme", "--domain", "exa mple", "--domain", "ok.test", "--domain", "OK.test",
                     "--hostname", "mail", "--admin", "boss", "--host", "no such host")
    errors = assert_clean_failure(result, EXIT_CODE_USER_ERROR)
    assert errors == [
        'NAME: "Acme" is not a valid site name; use 1-63 lowercase letters, digits and hyphens, starting with a letter',
        '--domain: "exa mple" is not a valid domain name; use letters, digits and hyphens in dot-separated labels',
        '--domain: "OK.test" is given twice; give each domain once',
        '--hostname: "mail" is not a fully qualified domain name; use the appliance\'s full DNS name, '
        "e.g. mail.example.com",
        '--admin: "boss" is not a valid email address; use e.g. postmaster@example.com',
        '--host: "no such host" is not a valid host name or IP address; use a DNS name, an IPv4 or an IPv6 address',
    ]
    assert not (site_dir / "inventories").exists()


def test_domain_is_required(site_dir: Path) -> None:
    result = run_cli("site", "new", "acme", "--hostname", "mail.acme.test")
    assert result.exit_code == 2
    assert "Missing option '--domain'" in result.stderr


BAD_ANSWERS = [
    pytest.param(["--hostname", "mail.acme.test\n"],
                 '--hostname: "mail.acme.test\\n" is not a fully qualified domain name; use the appliance\'s full DNS '
                 "name, e.g. mail.example.com", id="hostname-with-a-line-break"),
    pytest.param(["--hostname", "mail.acme.test", "--domain", "beta.test\n"],
                 '--domain: "beta.test\\n" is not a valid domain name; use letters, digits and hyphens in '
                 "dot-separated labels", id="domain-with-a-line-break"),
    pytest.param(["--hostname", "mail.acme.test", "--admin", "a+b@acme.test"],
                 '--admin: "a+b@acme.test" would be the site\'s mailbox but has characters a mailbox address cannot '
                 "have; use only letters, digits, dots, hyphens and underscores before the @, or an address outside "
                 "the site's domains", id="admin-mailbox-the-site-cannot-hold"),
    pytest.param(["--hostname", "mail.acme.test", "--host", "192.0.2.7\n"],
                 '--host: "192.0.2.7\\n" is not a valid host name or IP address; use a DNS name, an IPv4 or an IPv6 '
                 "address", id="host-with-a-line-break"),
    pytest.param(["--hostname", "mail.acme.test", "--host", "box\n", "--connection", "podman"],
                 '--host: "box\\n" is not a valid container name; use letters, digits, dots, underscores and hyphens',
                 id="container-with-a-line-break"),
]


@pytest.mark.parametrize(("options", "message"), BAD_ANSWERS)
def test_each_bad_answer_writes_nothing(site_dir: Path, options: list[str], message: str) -> None:
    result = run_cli("site", "new", "acme", "--domain", "acme.test", *options)
    assert assert_clean_failure(result, EXIT_CODE_USER_ERROR) == [message]
    assert not (site_dir / "inventories").exists()


def test_names_yaml_would_read_as_something_else_are_quoted(site_dir: Path) -> None:
    result = run_cli("site", "new", "yes", "--domain", "acme.test", "--hostname", "mail.acme.test",
                     "--admin", "o'neil#1{x}@elsewhere.example")
    assert result.exit_code == 0, result.output
    site = load_site(Path("inventories/yes/site.yml"))
    assert (site.name, site.admin_contact) == ("yes", "o'neil#1{x}@elsewhere.example")


def test_a_failure_after_writing_removes_what_was_written(site_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: AppContext, site: object) -> None:
        raise UserError("inventories/acme/.vault-pass: cannot write; disk full")

    (site_dir / "inventories/other").mkdir(parents=True)
    monkeypatch.setattr(AppContext, "write_inventory", broken)
    assert_clean_failure(run_cli("site", "new", "acme", "--domain", "acme.test", "--hostname", "mail.acme.test"),
                         EXIT_CODE_USER_ERROR)
    assert [p.name for p in (site_dir / "inventories").iterdir()] == ["other"]
    (site_dir / "inventories/acme").mkdir()
    (site_dir / "inventories/acme/notes.txt").write_text("mine\n")
    assert_clean_failure(run_cli("site", "new", "acme", "--domain", "acme.test", "--hostname", "mail.acme.test"),
                         EXIT_CODE_USER_ERROR)
    assert [p.name for p in (site_dir / "inventories/acme").iterdir()] == ["notes.txt"]


def test_starter_defaults_are_the_model_defaults(site_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"DEFAULT_DKIM_SELECTOR": "s2030", "DEFAULT_QUOTA": "2G", "DEFAULT_MESSAGE_SIZE_LIMIT": "30M",
                        "DEFAULT_SPAM_ADD_HEADER": 5.5, "DEFAULT_SPAM_REJECT": 20.0}.items():
        monkeypatch.setattr(starter, name, value)
    text = starter.render_starter(StarterAnswers(name="acme", domains=("acme.test",), hostname="mail.acme.test"))
    data = yaml.safe_load(text)
    assert data["domains"][0]["dkim_selector"] == "s2030"
    assert data["mailboxes"][0]["quota"] == "2G"
    assert data["message_size_limit"] == "30M"
    assert (data["spam"]["add_header"], data["spam"]["reject"]) == (5.5, 20)
