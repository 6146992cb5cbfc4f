"""The inventory writer: turn a validated site into <inventory-root>/<site>/ for Ansible.

Writes hosts.yml, group_vars/all/site.yml (plain) and group_vars/all/vault.yml (ansible-vault, with the
mailbox passwords and their Dovecot hashes, the Rspamd controller and Redis passwords, for an outbound: section
the sending accounts' passwords and hashes and the relay passwords the operator put there, and once a site has
had an archive: section the archive's checkpoint signing key). Output is deterministic and files are only
rewritten when their content changes, so re-rendering an unchanged site touches nothing.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mailappliance import vault
from mailappliance.errors import UserError, is_unsafe_char
from mailappliance.files import write_if_changed
from mailappliance.site import CATCH_ALL_DOMAINS, IMPLICIT_TLS_PORT, Archive, Carrier, Outbound, Site
from mailappliance.site.mta_sts import site_mta_sts_policy
from mailappliance.site.values import describe_char

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
# Only for a site with an outbound: section. Account passwords are generated like mailbox passwords; a relay's
# password comes from its provider, and the operator sets it with ansible-vault edit (never in the site file).
ACCOUNT_PASSWORDS = "mailappliance__outbound_account_passwords"
ACCOUNT_PASSWORD_HASHES = "mailappliance__outbound_account_password_hashes"
CARRIER_PASSWORDS = "mailappliance__outbound_carrier_passwords"
ACCOUNT_HASH_FINGERPRINTS = "_mailappliance__outbound_account_password_hash_fingerprints"
# Generated on the first render of a site with an archive: section and kept for good, also once the section is
# removed: the archive stays on the host, and its checkpoints must stay verifiable. Its public half is written to
# site.yml (ARCHIVE_PUBLIC_KEY), so an auditor verifies exports without the vault.
ARCHIVE_SIGNING_KEY = "mailappliance__archive_signing_key"
ARCHIVE_PUBLIC_KEY = "mailappliance__archive_public_key"
# A relay password lands in Postfix's sasl_passwd table after "username:"; one line of printable text.
MAX_CARRIER_PASSWORD_LENGTH = 256
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


@dataclass(frozen=True)
class _LoginVariables:
    """The vault variables of one kind of login: passwords, their SHA512-CRYPT hashes and the hashes'
    fingerprints, each a mapping by login name."""

    passwords: str
    hashes: str
    fingerprints: str


MAILBOX_LOGINS = _LoginVariables(MAILBOX_PASSWORDS, MAILBOX_PASSWORD_HASHES, MAILBOX_HASH_FINGERPRINTS)
ACCOUNT_LOGINS = _LoginVariables(ACCOUNT_PASSWORDS, ACCOUNT_PASSWORD_HASHES, ACCOUNT_HASH_FINGERPRINTS)


@dataclass
class InventoryResult:
    paths: InventoryPaths
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    # Passwords generated in this run, by mailbox address and by sending account name: shown to the user once,
    # then only in the vault.
    new_passwords: dict[str, str] = field(default_factory=dict)
    new_account_passwords: dict[str, str] = field(default_factory=dict)
    # Relay carriers with a SASL username whose password the vault does not hold yet.
    missing_carrier_passwords: list[str] = field(default_factory=list)


def inventory_paths(site_name: str, inventory_root: Path) -> InventoryPaths:
    return InventoryPaths(inventory_root / site_name)


def write_inventory(site: Site, inventory_root: Path) -> InventoryResult:
    """Write (or refresh) the inventory of `site`; everything is computed before the first write."""
    paths = inventory_paths(site.name, inventory_root)
    password = vault.read_vault_password(paths.vault_password)
    old_secrets = _read_secrets(paths, password)
    secrets, new_logins = _vault_data(site, old_secrets, paths.vault)
    origin = os.path.relpath(site.path, paths.directory.resolve())
    signing_key = secrets.get(ARCHIVE_SIGNING_KEY)
    public_key = (vault.signing_public_key(signing_key) or "") if signing_key else ""
    files = {
        paths.hosts: (_header(origin) + _dump(hosts_data(site))).encode(),
        paths.site_vars: (_header(origin) + _dump(site_vars(site, public_key))).encode(),
    }

    missing = [carrier.name for carrier in _sasl_carriers(site)
               if carrier.name not in secrets.get(CARRIER_PASSWORDS, {})]
    result = InventoryResult(paths=paths, new_passwords=new_logins[MAILBOX_LOGINS],
                             new_account_passwords=new_logins.get(ACCOUNT_LOGINS, {}),
                             missing_carrier_passwords=missing)
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
    return _read_rendered_secret(site_name, inventory_root, MAILBOX_PASSWORDS)


def read_account_passwords(site_name: str, inventory_root: Path) -> dict[str, str]:
    """The clear-text passwords of a rendered site's sending accounts, by account name (empty without any)."""
    return _read_rendered_secret(site_name, inventory_root, ACCOUNT_PASSWORDS)


def _read_rendered_secret(site_name: str, inventory_root: Path, variable: str) -> dict[str, str]:
    paths = inventory_paths(site_name, inventory_root)
    if not paths.vault.exists():
        raise UserError(f"{paths.vault}: no such file; render the site first with `mailappliance render {site_name}`")
    secrets = _read_secrets(paths, vault.read_vault_password(paths.vault_password))
    return dict(_mapping(secrets.get(variable)))


def hosts_data(site: Site) -> dict[str, Any]:
    host: dict[str, Any] = {"ansible_host": site.host.address, "ansible_user": site.host.user}
    if site.host.connection == "podman":
        host["ansible_connection"] = PODMAN_CONNECTION
    else:
        host["ansible_port"] = site.host.port
    return {"all": {"children": {GROUP: {"hosts": {site.hostname: host}}}}}


def site_vars(site: Site, archive_public_key: str = "") -> dict[str, Any]:
    """The site-wide `mailappliance__*` variables; the roles' defaults map them to their own (each role's README
    names the ones it reads). `archive_public_key` is the public half of the vault's archive signing key, "" when
    the vault holds none."""
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
        **(_outbound_vars(site.outbound, site.hostname) if site.outbound else {}),
        **_archive_vars(site.archive, archive_public_key),
    }


def _outbound_vars(outbound: Outbound, hostname: str) -> dict[str, Any]:
    """The outbound: section as plain lists, every default filled in, for the roles to iterate over.

    Carriers name the built-in direct one even when the file does not. Routes are in file order, each channel
    listed (no "every channel" shorthand) and the implied catch-all last; their domains are Postfix transport(5)
    keys: a name, ".example.de" for every name below example.de (the file's *.example.de), "*" for every domain.
    Hosted domains are never listed, but ".parent" and "*" cover them too, so local delivery must come first.
    The staff channel is the appliance's own Postfix instance and not among the channels."""
    return {
        "mailappliance__outbound_carriers": [_carrier_vars(carrier, hostname) for carrier in outbound.carriers],
        "mailappliance__outbound_routes": [
            {"domains": [_transport_key(pattern) for pattern in route.domains], "channels": list(route.channels),
             "carriers": list(route.carriers)}
            for route in outbound.routes
        ],
        "mailappliance__outbound_channels": [
            {"name": c.name, "dkim_selector": c.dkim_selector, "signing_domain": c.signing_domain,
             "bounce_domain": c.bounce_domain, "submission_port": c.submission_port, "process_limit": c.process_limit}
            for c in outbound.channels
        ],
        "mailappliance__outbound_accounts": [
            {"name": a.name, "channel": a.channel, "senders": list(a.senders), "daily_quota": a.daily_quota,
             "rate_per_minute": a.rate_per_minute}
            for a in outbound.accounts
        ],
    }


def _archive_vars(archive: Archive | None, public_key: str) -> dict[str, Any]:
    """The archive: section with every default filled in; without it only the switch, so roles can branch. The
    public key stays as long as the vault holds the key, since an archive left on the host is still verified.

    Retention rules are in file order and end with a catch-all (the default one unless the file ends with its own);
    a rule's direction "" and domains [] mean any; domains are names and *.wildcards as the site file wrote them."""
    key = {ARCHIVE_PUBLIC_KEY: public_key} if public_key else {}
    if archive is None:
        return {"mailappliance__archive_enabled": False, **key}
    return {
        "mailappliance__archive_enabled": True,
        "mailappliance__archive_store": archive.store,
        "mailappliance__archive_cold_store": archive.cold_store,
        "mailappliance__archive_cold_after_days": archive.cold_after_days,
        "mailappliance__archive_on_failure": archive.on_failure,
        "mailappliance__archive_retention": [
            {"days": rule.days, "direction": rule.direction, "domains": list(rule.domains)}
            for rule in archive.retention
        ],
        "mailappliance__archive_checkpoint_minutes": archive.checkpoint_minutes,
        **key,
    }


def _carrier_vars(carrier: Carrier, hostname: str) -> dict[str, Any]:
    relay = carrier.type == "relay"
    return {
        "name": carrier.name,
        "type": carrier.type,
        "host": carrier.host,
        "port": carrier.port,
        # Postfix's next hop for a relay: brackets turn off MX lookups (and hold an IPv6 address as they are).
        "nexthop": f"[{carrier.host}]:{carrier.port}" if relay else "",
        "tls": carrier.tls,
        "implicit_tls": relay and carrier.port == IMPLICIT_TLS_PORT,
        "username": carrier.username,
        "source_address": carrier.source_address,
        "helo_name": carrier.helo_name or hostname,
        "limits": {"concurrency_per_destination": carrier.limits.concurrency_per_destination,
                   "messages_per_minute": carrier.limits.messages_per_minute},
        "mta_sts": carrier.mta_sts,
    }


def _transport_key(pattern: str) -> str:
    return pattern if pattern == CATCH_ALL_DOMAINS else pattern.replace("*.", ".", 1)


def _sasl_carriers(site: Site) -> list[Carrier]:
    return [carrier for carrier in site.outbound.carriers if carrier.username] if site.outbound else []


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


def _vault_data(site: Site, old: dict[str, Any],
                vault_path: Path) -> tuple[dict[str, Any], dict[_LoginVariables, dict[str, str]]]:
    """The vault's variables, reusing every old secret that is still valid; also the passwords generated now, by
    kind of login."""
    key = old.get(FINGERPRINT_KEY)
    if not _is_text(key):
        key = vault.new_fingerprint_key()
    passwords, hashes, fingerprints, new_passwords = _login_secrets([m.address for m in site.mailboxes], old,
                                                                    MAILBOX_LOGINS, key)
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
    new_logins = {MAILBOX_LOGINS: new_passwords}
    if site.outbound is not None:
        names = [account.name for account in site.outbound.accounts]
        passwords, hashes, fingerprints, new_logins[ACCOUNT_LOGINS] = _login_secrets(names, old, ACCOUNT_LOGINS, key)
        data |= {
            ACCOUNT_PASSWORDS: passwords,
            ACCOUNT_PASSWORD_HASHES: hashes,
            CARRIER_PASSWORDS: _carrier_passwords(site, old, vault_path),
            ACCOUNT_HASH_FINGERPRINTS: fingerprints,
        }
    signing_key = _archive_signing_key(site, old, vault_path)
    if signing_key is not None:
        data[ARCHIVE_SIGNING_KEY] = signing_key
    return data, new_logins


def _archive_signing_key(site: Site, old: dict[str, Any], vault_path: Path) -> str | None:
    """The vault's archive signing key, generated for the first archive: section and kept from then on; None for a
    site that never had one. A key that is not one is refused rather than replaced: checkpoints already signed
    verify only with the key that signed them."""
    key = old.get(ARCHIVE_SIGNING_KEY)
    if key is None:
        return vault.new_signing_key() if site.archive is not None else None
    if not isinstance(key, str) or vault.signing_public_key(key) is None:
        raise UserError(f"{vault_path}: {ARCHIVE_SIGNING_KEY}: is not an Ed25519 private key (32 bytes in base64); "
                        "restore it from a backup of the vault, since the archive's checkpoints verify only with the "
                        "key that signed them, or remove the variable to start a new key")
    return key


def _carrier_passwords(site: Site, old: dict[str, Any], vault_path: Path) -> dict[str, str]:
    """The relay passwords the operator set in the vault, of the carriers that still log in; each checked, since
    it is written into a Postfix table line."""
    old_passwords = _mapping(old.get(CARRIER_PASSWORDS))
    kept: dict[str, str] = {}
    errors = []
    for carrier in _sasl_carriers(site):
        password = old_passwords.get(carrier.name)
        if password is None or password == "":
            continue
        where = f"{vault_path}: {CARRIER_PASSWORDS}.{carrier.name}"
        fix = (f"set it again with `ansible-vault edit {vault_path}`, in quotes, as one line of printable text of "
               f"at most {MAX_CARRIER_PASSWORD_LENGTH} characters")
        if not isinstance(password, str):
            errors.append(f"{where}: the password is not text; {fix}")
        elif (bad := next((char for char in password if is_unsafe_char(char)), None)) is not None:
            errors.append(f"{where}: the password contains {describe_char(bad)}; {fix}")
        elif password != password.strip():
            errors.append(f"{where}: the password has whitespace at its start or end; {fix}")
        elif len(password) > MAX_CARRIER_PASSWORD_LENGTH:
            errors.append(f"{where}: the password is longer than {MAX_CARRIER_PASSWORD_LENGTH} characters; {fix}")
        else:
            kept[carrier.name] = password
    if errors:
        raise UserError(*errors)
    return kept


def _login_secrets(
    logins: list[str], old: dict[str, Any], variables: _LoginVariables, key: str,
) -> tuple[dict[str, str], dict[str, str], dict[str, str], dict[str, str]]:
    """Passwords, hashes and hash fingerprints by login (a mailbox address, an account name), and the passwords
    generated in this run."""
    old_passwords = _mapping(old.get(variables.passwords))
    old_hashes = _mapping(old.get(variables.hashes))
    old_fingerprints = _mapping(old.get(variables.fingerprints))
    passwords: dict[str, str] = {}
    kept: dict[str, str | None] = {}
    new: dict[str, str] = {}
    for login in logins:
        password = old_passwords.get(login)
        if not _is_text(password):
            password = new[login] = vault.new_password()
        passwords[login] = password
        # Hashes are salted, so an existing one is kept as long as it still matches the password. SHA512-CRYPT
        # takes milliseconds to check, so a pair checked once is recognised later by its fingerprint.
        old_hash = old_hashes.get(login)
        old_fingerprint = old_fingerprints.get(login)
        matches = _is_text(old_hash) and (old_fingerprint == vault.hash_fingerprint(key, password, old_hash)
                                          or vault.hash_matches(password, old_hash))
        kept[login] = old_hash if matches else None
    missing = [login for login, hashed in kept.items() if hashed is None]
    fresh = dict(zip(missing, vault.hash_passwords([passwords[login] for login in missing])))
    hashes = {login: hashed or fresh[login] for login, hashed in kept.items()}
    fingerprints = {login: vault.hash_fingerprint(key, passwords[login], hashed)
                    for login, hashed in hashes.items()}
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
