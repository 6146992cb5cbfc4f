"""The inventory writer: turn a validated site into <inventory-root>/<site>/ for Ansible.

Writes hosts.yml, group_vars/all/site.yml (plain) and group_vars/all/vault.yml (ansible-vault, with the
mailbox passwords and their Dovecot hashes, and the Rspamd controller and Redis passwords). Output is
deterministic and files are only rewritten when their content changes, so re-rendering an unchanged site
touches nothing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mailappliance import vault
from mailappliance.errors import UserError
from mailappliance.files import write_if_changed
from mailappliance.site import Site
from mailappliance.site.mta_sts import site_mta_sts_policy

GROUP = "mailappliance"
# plugins/connection/mailappliance_podman.py: containers.podman.podman with pipelining, one podman exec a module.
PODMAN_CONNECTION = "mailappliance_podman"
VAULT_PASSWORD_FILE = ".vault-pass"
PUBLISHED_DIR = "published"

# The variables of vault.yml. Those with a leading underscore are the CLI's own bookkeeping, read by no role.
MAILBOX_PASSWORDS = "mailappliance__mailbox_passwords"
MAILBOX_PASSWORD_HASHES = "mailappliance__mailbox_password_hashes"
RSPAMD_CONTROLLER_PASSWORD = "mailappliance__rspamd_controller_password"
RSPAMD_CONTROLLER_PASSWORD_HASH = "mailappliance__rspamd_controller_password_hash"
REDIS_PASSWORD = "mailappliance__redis_password"
FINGERPRINT_KEY = "_mailappliance__hash_fingerprint_key"
MAILBOX_HASH_FINGERPRINTS = "_mailappliance__mailbox_password_hash_fingerprints"
# What the rspamd role's preflight accepts; a hand-edited value outside it is replaced.
_REDIS_PASSWORD_PATTERN = re.compile(r"[A-Za-z0-9]{16,}")


@dataclass(frozen=True)
class InventoryPaths:
    """Where each generated file of one site lives."""

    directory: Path

    @property
    def hosts(self) -> Path:
        return self.directory / "hosts.yml"

    @property
    def site_vars(self) -> Path:
        return self.directory / "group_vars" / "all" / "site.yml"

    @property
    def vault(self) -> Path:
        return self.directory / "group_vars" / "all" / "vault.yml"

    @property
    def vault_password(self) -> Path:
        return self.directory / VAULT_PASSWORD_FILE

    @property
    def published(self) -> Path:
        """Where deploy copies what the appliance generated and DNS must publish: <published>/<host>/dkim, tls."""
        return self.directory / PUBLISHED_DIR


@dataclass
class InventoryResult:
    paths: InventoryPaths
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    # Passwords generated in this run, by mailbox address: shown to the user once, then only in the vault.
    new_passwords: dict[str, str] = field(default_factory=dict)


def inventory_paths(site_name: str, inventory_root: Path) -> InventoryPaths:
    return InventoryPaths(inventory_root / site_name)


def write_inventory(site: Site, inventory_root: Path) -> InventoryResult:
    """Write (or refresh) the inventory of `site`; everything is computed before the first write."""
    paths = inventory_paths(site.name, inventory_root)
    password = vault.read_vault_password(paths.vault_password)
    old_secrets = _read_secrets(paths, password)
    secrets, new_passwords = _vault_data(site, old_secrets)
    origin = os.path.relpath(site.path, paths.directory.resolve())
    files = {
        paths.hosts: (_header(origin) + _dump(hosts_data(site))).encode(),
        paths.site_vars: (_header(origin) + _dump(site_vars(site))).encode(),
    }

    result = InventoryResult(paths=paths, new_passwords=new_passwords)
    if password is None:
        password = vault.create_vault_password(paths.vault_password)
    if secrets == old_secrets:
        # Re-encrypting uses a fresh salt; keeping the old ciphertext keeps the file byte-identical.
        result.unchanged.append(paths.vault)
    else:
        files[paths.vault] = vault.encrypt(_dump(secrets), password)
    for path, content in files.items():
        mode = 0o600 if path == paths.vault else 0o644
        (result.written if write_if_changed(path, content, mode) else result.unchanged).append(path)
    return result


def read_mailbox_passwords(site_name: str, inventory_root: Path) -> dict[str, str]:
    """The clear-text mailbox passwords of a rendered site, by address."""
    paths = inventory_paths(site_name, inventory_root)
    if not paths.vault.exists():
        raise UserError(f"{paths.vault}: no such file; render the site first with `mailappliance render {site_name}`")
    secrets = _read_secrets(paths, vault.read_vault_password(paths.vault_password))
    return dict(secrets.get(MAILBOX_PASSWORDS) or {})


def hosts_data(site: Site) -> dict[str, Any]:
    host: dict[str, Any] = {"ansible_host": site.host.address, "ansible_user": site.host.user}
    if site.host.connection == "podman":
        host["ansible_connection"] = PODMAN_CONNECTION
    else:
        host["ansible_port"] = site.host.port
    return {"all": {"children": {GROUP: {"hosts": {site.hostname: host}}}}}


def site_vars(site: Site) -> dict[str, Any]:
    """The site-wide `mailappliance__*` variables; the roles' defaults map them to their own (each role's README
    names the ones it reads)."""
    return {
        "mailappliance__site": site.name,
        "mailappliance__hostname": site.hostname,
        "mailappliance__admin_contact": site.admin_contact,
        "mailappliance__domains": [{"name": d.name, "dkim_selector": d.dkim_selector} for d in site.domains],
        "mailappliance__mailboxes": [
            {"address": m.address, "quota_bytes": m.quota_bytes, "name": m.name} for m in site.mailboxes
        ],
        "mailappliance__aliases": [{"address": a.address, "to": list(a.to)} for a in site.aliases],
        "mailappliance__message_size_limit": site.message_size_limit_bytes,
        "mailappliance__tls_source": site.tls.source,
        "mailappliance__tls_cert_src": str(site.tls.cert) if site.tls.cert else "",
        "mailappliance__tls_key_src": str(site.tls.key) if site.tls.key else "",
        "mailappliance__spam_add_header_score": site.spam.add_header,
        "mailappliance__spam_reject_score": site.spam.reject,
        "mailappliance__spam_network_checks": site.spam.network_checks,
        "mailappliance__antivirus_mirror_url": site.antivirus.mirror_url,
        "mailappliance__antivirus_local_databases": [str(p) for p in site.antivirus.local_databases],
        # The MTA-STS policy text the appliance serves byte for byte; `mailappliance dns plan` hashes the same
        # text into the id it publishes, so the two cannot disagree.
        "mailappliance__mta_sts_policy": site_mta_sts_policy(site),
        "mailappliance__login_protection": {
            "max_failures": site.login_protection.max_failures, "find_time": site.login_protection.find_time,
            "ban_time": site.login_protection.ban_time, "allow": list(site.login_protection.allow),
        },
        "mailappliance__trusted_relays": list(site.trusted_relays),
        "mailappliance__dns_resolvers": list(site.dns.resolvers),
        "mailappliance__dns_dnssec_validation": site.dns.dnssec_validation,
        "mailappliance__dns_air_gapped": site.dns.air_gapped,
    }


def _read_secrets(paths: InventoryPaths, password: bytes | None) -> dict[str, Any]:
    """The variables of the current vault, or {} before the first render."""
    if not paths.vault.exists():
        return {}
    if password is None:
        raise UserError(
            f"{paths.vault}: exists but {paths.vault_password} is missing, so it cannot be decrypted; restore "
            "the password file, or delete vault.yml to generate new mailbox passwords"
        )
    plaintext = vault.decrypt(paths.vault.read_bytes(), password, paths.vault, paths.vault_password)
    # libyaml's parser: the vault of a site with thousands of mailboxes takes seconds in pure Python.
    data = yaml.load(plaintext, Loader=_SafeLoader)
    if not isinstance(data, dict):
        raise UserError(f"{paths.vault}: does not hold a mapping of secrets; delete it to generate new passwords")
    return data


def _vault_data(site: Site, old: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The vault's variables, reusing every old secret that is still valid; also the new mailbox passwords."""
    key = old.get(FINGERPRINT_KEY)
    if not _is_text(key):
        key = vault.new_fingerprint_key()
    passwords, hashes, fingerprints, new_passwords = _mailbox_secrets(site, old, key)
    controller_password = old.get(RSPAMD_CONTROLLER_PASSWORD)
    if not _is_text(controller_password):
        controller_password = vault.new_password()
    controller_hash = old.get(RSPAMD_CONTROLLER_PASSWORD_HASH)
    # Salted like the mailbox hashes, and cheap enough to check on every render.
    if not (_is_text(controller_hash) and vault.rspamd_hash_matches(controller_password, controller_hash)):
        controller_hash = vault.rspamd_hash(controller_password)
    redis_password = old.get(REDIS_PASSWORD)
    if not (_is_text(redis_password) and _REDIS_PASSWORD_PATTERN.fullmatch(redis_password)):
        redis_password = vault.new_redis_password()
    data = {
        MAILBOX_PASSWORDS: passwords,
        MAILBOX_PASSWORD_HASHES: hashes,
        RSPAMD_CONTROLLER_PASSWORD: controller_password,
        RSPAMD_CONTROLLER_PASSWORD_HASH: controller_hash,
        REDIS_PASSWORD: redis_password,
        FINGERPRINT_KEY: key,
        MAILBOX_HASH_FINGERPRINTS: fingerprints,
    }
    return data, new_passwords


def _mailbox_secrets(
    site: Site, old: dict[str, Any], key: str,
) -> tuple[dict[str, str], dict[str, str], dict[str, str], dict[str, str]]:
    """Passwords, hashes and hash fingerprints by address, and the passwords generated in this run."""
    old_passwords = _mapping(old.get(MAILBOX_PASSWORDS))
    old_hashes = _mapping(old.get(MAILBOX_PASSWORD_HASHES))
    old_fingerprints = _mapping(old.get(MAILBOX_HASH_FINGERPRINTS))
    passwords: dict[str, str] = {}
    kept: dict[str, str | None] = {}
    new: dict[str, str] = {}
    for mailbox in site.mailboxes:
        address = mailbox.address
        password = old_passwords.get(address)
        if not _is_text(password):
            password = new[address] = vault.new_password()
        passwords[address] = password
        # Hashes are salted, so an existing one is kept as long as it still matches the password. SHA512-CRYPT
        # takes milliseconds to check, so a pair checked once is recognised later by its fingerprint.
        old_hash = old_hashes.get(address)
        old_fingerprint = old_fingerprints.get(address)
        matches = _is_text(old_hash) and (old_fingerprint == vault.hash_fingerprint(key, password, old_hash)
                                          or vault.hash_matches(password, old_hash))
        kept[address] = old_hash if matches else None
    missing = [address for address, hashed in kept.items() if hashed is None]
    fresh = dict(zip(missing, vault.hash_passwords([passwords[address] for address in missing])))
    hashes = {address: hashed or fresh[address] for address, hashed in kept.items()}
    fingerprints = {address: vault.hash_fingerprint(key, passwords[address], hashed)
                    for address, hashed in hashes.items()}
    return passwords, hashes, fingerprints, new


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _header(origin: str) -> str:
    return (f"# generated by mailappliance from {origin}\n"
            "# Edit the site file and run `mailappliance render`; changes made here are overwritten.\n")


_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(yaml.SafeDumper):
    """Indents lists under their key, as yamllint and the rest of the project write YAML."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # Text of several lines (the MTA-STS policy) as a literal block, so the file shows it as it is served.
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_Dumper, explicit_start=True, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=1000)
