"""`mailappliance render SITE`: the inventory, then the offline preview rendered by playbooks/render.yml."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import yaml

from clirunner import assert_clean_failure, run_cli
from conftest import MINIMAL_SITE, write_site
from mailappliance import vault
from mailappliance.exit_codes import EXIT_CODE_USER_ERROR


def read_vault(directory: Path) -> dict:
    vault_file, password_file = directory / "group_vars/all/vault.yml", directory / ".vault-pass"
    plaintext = vault.decrypt(vault_file.read_bytes(), password_file.read_bytes().strip(), vault_file, password_file)
    return yaml.safe_load(plaintext)


def test_no_preview_writes_the_inventory_only(full_site: Path, site_dir: Path) -> None:
    result = run_cli("render", "site.yml", "--no-preview")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:3] == [
        "wrote inventories/molecule/hosts.yml",
        "wrote inventories/molecule/group_vars/all/site.yml",
        "wrote inventories/molecule/group_vars/all/vault.yml",
    ]
    assert "alice@alpha.test" in result.stdout
    assert not (site_dir / "build").exists()
    again = run_cli("render", "site.yml", "--no-preview")
    assert again.stdout == "inventory inventories/molecule is up to date\n"


def test_account_passwords_are_printed_once_and_missing_relay_passwords_each_time(outbound_site: Path) -> None:
    result = run_cli("render", "site.yml", "--no-preview")
    assert result.exit_code == 0, result.output
    passwords = read_vault(Path("inventories/acme"))["mailappliance__outbound_account_passwords"]
    lines = result.stdout.splitlines()
    heading = lines.index("New sending account passwords (the account's name is its SMTP login; shown once; kept "
                          "encrypted in inventories/acme/group_vars/all/vault.yml):")
    assert lines[heading + 1:heading + 3] == [f"  shop        {passwords['shop']}",
                                               f"  newsletter  {passwords['newsletter']}"]
    reminder = ("Carrier isp1 logs in to its relay, but the vault holds no password for it yet: add it as "
                "mailappliance__outbound_carrier_passwords.isp1 with `ansible-vault edit --vault-password-file "
                "inventories/acme/.vault-pass inventories/acme/group_vars/all/vault.yml` before deploying")
    assert lines[-1] == reminder
    again = run_cli("render", "site.yml", "--no-preview")
    assert again.stdout.splitlines() == ["inventory inventories/acme is up to date", reminder]


def test_roots_come_from_options_or_environment(full_site: Path, site_dir: Path) -> None:
    assert run_cli("--inventory-root", "a", "render", "site.yml", "--no-preview").exit_code == 0
    assert (site_dir / "a/molecule/hosts.yml").is_file()
    env = {"MAILAPPLIANCE_INVENTORY_ROOT": str(site_dir / "b")}
    assert run_cli("render", "site.yml", "--no-preview", env=env).exit_code == 0
    assert (site_dir / "b/molecule/hosts.yml").is_file()


def test_invalid_site_writes_nothing(site_dir: Path) -> None:
    write_site(site_dir, dict(MINIMAL_SITE, mailboxes=[{"address": "bob@gamma.test"}]))
    errors = assert_clean_failure(run_cli("render", "site.yml"), EXIT_CODE_USER_ERROR)
    assert errors == ['site.yml: mailboxes[0].address: "bob@gamma.test" is not in a declared domain; '
                      "add gamma.test to domains or use one of the declared domains (alpha.test, beta.test)"]
    assert not (site_dir / "inventories").exists()
    assert not (site_dir / "build").exists()


def test_preview_renders_the_server_files(full_site: Path, site_dir: Path) -> None:
    """Runs playbooks/render.yml through ansible-runner on this machine; takes some seconds."""
    result = run_cli("render", "site.yml")
    assert result.exit_code == 0, result.output
    preview = site_dir / "build/molecule/preview/mail.alpha.test"
    main_cf = (preview / "etc/postfix/main.cf").read_text()
    assert "myhostname = mail.alpha.test" in main_cf
    assert "message_size_limit = 26214400" in main_cf
    assert "TASK [postfix : " in result.stdout
    assert "Preview of " in result.stdout
    # The quota policy reads each mailbox's usage where Dovecot keeps it (<home>/quota-usage, home as userdb says),
    # so a wrong path cannot quietly send every request to quota-status.
    dovecot_conf = (preview / "etc/dovecot/dovecot.conf").read_text()
    assert "home=/var/vmail/%d/%n" in dovecot_conf
    assert "quota = dict:User quota::file:%h/quota-usage" in dovecot_conf
    quotas = json.loads((preview / "etc/postfix/mailbox_quotas.json").read_text())
    assert quotas["mailboxes"]["alice@alpha.test"] == {"bytes": 1024**3,
                                                       "usage": "/var/vmail/alpha.test/alice/quota-usage"}
    assert quotas["mailboxes"]["admin@alpha.test"]["usage"] == "/var/vmail/alpha.test/admin/quota-usage"
    master_cf = (preview / "etc/postfix/master.cf").read_text()
    assert ("user=vmail argv=/usr/bin/python3 -I /usr/local/sbin/mailappliance-quota-policy "
            "--limits /etc/postfix/mailbox_quotas.json --dovecot inet:127.0.0.1:12340") in master_cf
    assert "check_policy_service unix:private/quota-policy" in main_cf
    assert "  mail.alpha.test/etc/postfix/main.cf" in result.stdout.splitlines()
    # The preview shows configuration, never the mailboxes' clear-text passwords.
    vault_text = (site_dir / "inventories/molecule/.vault-pass").read_text()
    assert vault_text.strip() not in result.output


def test_render_never_prints_service_secrets_or_hashes(full_site: Path, site_dir: Path) -> None:
    """Only new mailbox passwords are shown, once; the rest of the vault stays in the vault."""
    first = run_cli("render", "site.yml")
    again = run_cli("render", "site.yml")
    assert first.exit_code == again.exit_code == 0, first.output + again.output
    secrets = read_vault(site_dir / "inventories/molecule")
    shown = [secrets["mailappliance__rspamd_controller_password"], secrets["mailappliance__redis_password"],
             secrets["mailappliance__rspamd_controller_password_hash"], secrets["_mailappliance__hash_fingerprint_key"],
             *secrets["mailappliance__mailbox_password_hashes"].values()]
    for secret in shown:
        assert secret not in first.output + again.output
    for password in secrets["mailappliance__mailbox_passwords"].values():
        assert password in first.output and password not in again.output
    # The files holding them are written, with the mode the role gives them.
    preview = site_dir / "build/molecule/preview/mail.alpha.test"
    assert secrets["mailappliance__rspamd_controller_password_hash"] in \
        (preview / "etc/rspamd/local.d/worker-controller.inc").read_text()
    assert stat.S_IMODE((preview / "etc/dovecot/users").stat().st_mode) == 0o640


def test_render_never_prints_the_archive_signing_key(archive_site: Path, site_dir: Path) -> None:
    """The key is made on the first render of an archive: section and stays in the vault: neither the inventory
    writer nor the preview's Ansible output shows it (the preview's own files are what the host gets, and the
    archive role gives the host its key)."""
    first = run_cli("render", "site.yml", "--no-preview")
    assert first.exit_code == 0, first.output
    key = read_vault(site_dir / "inventories/acme")["mailappliance__archive_signing_key"]
    # Whether the preview succeeds is test_preview_renders_the_server_files's concern; failing or not, it is quiet.
    preview = run_cli("render", "site.yml")
    assert key not in first.output + preview.output
