"""The inventory writer: stable output (golden files), vaulted secrets kept across renders, nothing
written for an invalid site."""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from passlib.hash import sha512_crypt

from conftest import ARCHIVE_SITE, GOLDEN_DIR, MINIMAL_SITE, write_site
from mailappliance import vault
from mailappliance.errors import UserError
from mailappliance.inventory import inventory_paths, read_account_passwords, read_mailbox_passwords, write_inventory
from mailappliance.site import load_site

# Set UPDATE_GOLDEN=1 to rewrite the golden files from the current output (then review the git diff).
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"
SITE_DIR_PLACEHOLDER = "<SITE_DIR>"
GOLDEN_FILES = ("hosts.yml", "group_vars/all/site.yml")
# vault.yml is encrypted with a random salt, so its variables are checked by name instead of a golden file.
VAULT_VARIABLES = [
    "mailappliance__mailbox_passwords",
    "mailappliance__mailbox_password_hashes",
    "mailappliance__rspamd_controller_password",
    "mailappliance__rspamd_controller_password_hash",
    "mailappliance__redis_password",
    "_mailappliance__hash_fingerprint_key",
    "_mailappliance__mailbox_password_hash_fingerprints",
]
# Added for a site with an outbound: section.
OUTBOUND_VAULT_VARIABLES = [
    "mailappliance__outbound_account_passwords",
    "mailappliance__outbound_account_password_hashes",
    "mailappliance__outbound_carrier_passwords",
    "_mailappliance__outbound_account_password_hash_fingerprints",
]
# Added on the first render of a site with an archive: section, and kept from then on.
ARCHIVE_SIGNING_KEY = "mailappliance__archive_signing_key"
ARCHIVE_PUBLIC_KEY = "mailappliance__archive_public_key"
# The public key is made anew for each test; the golden file holds this instead.
PUBLIC_KEY_PLACEHOLDER = "<ARCHIVE_PUBLIC_KEY>"


def render(site_file: Path, root: Path = Path("inventories")):
    return write_inventory(load_site(site_file), root)


def decrypted_vault(directory: Path) -> dict:
    password = (directory / ".vault-pass").read_bytes().strip()
    vault_file = directory / "group_vars/all/vault.yml"
    return yaml.safe_load(vault.decrypt(vault_file.read_bytes(), password, vault_file, directory / ".vault-pass"))


def rewrite_vault(directory: Path, secrets: dict) -> None:
    """Replace the vault's content, as a hand edit or an older mailappliance would have left it."""
    password = (directory / ".vault-pass").read_bytes().strip()
    (directory / "group_vars/all/vault.yml").write_bytes(vault.encrypt(yaml.safe_dump(secrets), password))


class CountingHashChecks:
    """Counts SHA512-CRYPT verifications, the slow step fingerprints are there to skip."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self._real = vault.hash_matches
        monkeypatch.setattr(vault, "hash_matches", self)

    def __call__(self, password: str, hashed: str) -> bool:
        self.calls += 1
        return self._real(password, hashed)


def check_golden(case: str, directory: Path, site_dir: Path, placeholders: dict[str, str] | None = None) -> None:
    for name in GOLDEN_FILES:
        # Controller paths are absolute; the golden files hold a placeholder for the test's folder (and for other
        # values each render makes anew).
        actual = (directory / name).read_text().replace(str(site_dir), SITE_DIR_PLACEHOLDER)
        for value, placeholder in (placeholders or {}).items():
            actual = actual.replace(value, placeholder)
        golden = GOLDEN_DIR / case / name
        if UPDATE_GOLDEN:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(actual)
        assert actual == golden.read_text(), f"{name} differs from {golden}"


def test_full_site_matches_golden_files(full_site: Path, site_dir: Path) -> None:
    result = render(full_site)
    check_golden("full", result.paths.directory, site_dir)


def test_podman_site_matches_golden_files(site_dir: Path) -> None:
    data = dict(MINIMAL_SITE, host={"connection": "podman", "address": "mailappliance-demo"})
    result = render(write_site(site_dir, data))
    check_golden("podman", result.paths.directory, site_dir)


def test_outbound_site_matches_golden_files(outbound_site: Path, site_dir: Path) -> None:
    result = render(outbound_site)
    check_golden("outbound", result.paths.directory, site_dir)


def test_archive_site_matches_golden_files(archive_site: Path, site_dir: Path) -> None:
    result = render(archive_site)
    public_key = yaml.safe_load(result.paths.site_vars.read_text())[ARCHIVE_PUBLIC_KEY]
    check_golden("archive", result.paths.directory, site_dir, {public_key: PUBLIC_KEY_PLACEHOLDER})


def test_vault_holds_passwords_and_dovecot_hashes(full_site: Path) -> None:
    result = render(full_site)
    secrets = decrypted_vault(result.paths.directory)
    assert list(secrets) == VAULT_VARIABLES
    passwords = secrets["mailappliance__mailbox_passwords"]
    hashes = secrets["mailappliance__mailbox_password_hashes"]
    assert list(passwords) == list(hashes) == ["alice@alpha.test", "admin@alpha.test"]
    assert result.new_passwords == passwords
    for address, password in passwords.items():
        assert len(password) >= 24
        assert hashes[address].startswith("{SHA512-CRYPT}$6$rounds=")
        assert sha512_crypt.verify(password, hashes[address].removeprefix("{SHA512-CRYPT}"))
    assert result.paths.vault.read_bytes().startswith(b"$ANSIBLE_VAULT;1.1;AES256\n")


def test_secret_files_are_private(full_site: Path) -> None:
    paths = render(full_site).paths
    assert stat.S_IMODE(paths.vault_password.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.vault.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.hosts.stat().st_mode) == 0o644


def test_rerender_changes_nothing(full_site: Path) -> None:
    first = render(full_site)
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns)
              for path in first.paths.directory.rglob("*") if path.is_file()}
    second = render(full_site)
    after = {path: (path.read_bytes(), path.stat().st_mtime_ns)
             for path in second.paths.directory.rglob("*") if path.is_file()}
    assert second.written == []
    assert second.new_passwords == {}
    assert after == before


def test_passwords_survive_changes_and_new_mailboxes_get_new_ones(site_dir: Path) -> None:
    site_file = write_site(site_dir, MINIMAL_SITE)
    first = render(site_file)
    alice = first.new_passwords["alice@alpha.test"]
    alice_hash = decrypted_vault(first.paths.directory)["mailappliance__mailbox_password_hashes"]["alice@alpha.test"]

    data = dict(MINIMAL_SITE, mailboxes=[{"address": "alice@alpha.test"}, {"address": "bob@beta.test"}])
    second = render(write_site(site_dir, data))
    assert list(second.new_passwords) == ["bob@beta.test"]
    secrets = decrypted_vault(second.paths.directory)
    assert secrets["mailappliance__mailbox_passwords"]["alice@alpha.test"] == alice
    assert secrets["mailappliance__mailbox_password_hashes"]["alice@alpha.test"] == alice_hash
    assert second.new_passwords["bob@beta.test"] != alice

    # A removed mailbox takes its password with it.
    third = render(write_site(site_dir, dict(MINIMAL_SITE, mailboxes=[{"address": "bob@beta.test"}])))
    assert list(decrypted_vault(third.paths.directory)["mailappliance__mailbox_passwords"]) == ["bob@beta.test"]
    assert read_mailbox_passwords("molecule", Path("inventories")) == {
        "bob@beta.test": second.new_passwords["bob@beta.test"]}
    # A site without sending accounts has none to read.
    assert read_account_passwords("molecule", Path("inventories")) == {}


def test_vault_password_is_generated_once(full_site: Path) -> None:
    paths = render(full_site).paths
    password = paths.vault_password.read_bytes()
    paths.vault.unlink()
    render(full_site)
    assert paths.vault_password.read_bytes() == password


def test_invalid_site_writes_nothing(site_dir: Path) -> None:
    site_file = write_site(site_dir, dict(MINIMAL_SITE, hostname="mail"))
    with pytest.raises(UserError):
        render(site_file)
    assert not (site_dir / "inventories").exists()


def test_vault_without_its_password_is_a_user_error(full_site: Path) -> None:
    paths = render(full_site).paths
    paths.vault_password.unlink()
    with pytest.raises(UserError) as caught:
        render(full_site)
    assert caught.value.lines == (
        f"{paths.vault}: exists but {paths.vault_password} is missing, so it cannot be decrypted; restore the "
        "password file, or delete vault.yml to generate new mailbox passwords",)


def test_vault_with_the_wrong_password_is_a_user_error(full_site: Path) -> None:
    paths = render(full_site).paths
    paths.vault_password.write_text("not-the-password\n")
    with pytest.raises(UserError) as caught:
        render(full_site)
    assert caught.value.lines == (
        f"{paths.vault}: cannot be decrypted with {paths.vault_password}; restore the matching password file, "
        "or delete vault.yml to generate new mailbox passwords",)


def test_inventory_goes_to_the_site_name_under_the_root(full_site: Path, site_dir: Path) -> None:
    result = render(full_site, site_dir / "elsewhere")
    assert result.paths == inventory_paths("molecule", site_dir / "elsewhere")
    assert result.paths.hosts.is_file()


def test_vault_holds_rspamd_and_redis_secrets(full_site: Path) -> None:
    result = render(full_site)
    secrets = decrypted_vault(result.paths.directory)
    controller = secrets["mailappliance__rspamd_controller_password"]
    assert len(controller) >= 32
    assert vault.rspamd_hash_matches(controller, secrets["mailappliance__rspamd_controller_password_hash"])
    assert secrets["mailappliance__rspamd_controller_password_hash"].startswith("$1$")
    redis = secrets["mailappliance__redis_password"]
    assert len(redis) >= 32 and redis.isascii() and redis.isalnum()
    # Service passwords live in the vault only; the one-time listing is for mailbox owners.
    assert controller not in result.new_passwords.values() and redis not in result.new_passwords.values()
    assert list(result.new_passwords) == ["alice@alpha.test", "admin@alpha.test"]


def test_service_secrets_are_stable_across_renders(full_site: Path) -> None:
    first = decrypted_vault(render(full_site).paths.directory)
    data = dict(MINIMAL_SITE, mailboxes=[{"address": "alice@alpha.test"}, {"address": "bob@beta.test"}])
    second = decrypted_vault(render(write_site(Path("."), data)).paths.directory)
    for name in VAULT_VARIABLES[2:6]:
        assert second[name] == first[name], name


def test_rerender_checks_no_crypt_hash(full_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    render(full_site)
    checks = CountingHashChecks(monkeypatch)
    assert render(full_site).written == []
    assert checks.calls == 0


def test_vault_of_an_older_version_is_upgraded_once(full_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = render(full_site).paths
    current = decrypted_vault(paths.directory)
    older = {name: current[name] for name in VAULT_VARIABLES[:2]}
    rewrite_vault(paths.directory, older)
    checks = CountingHashChecks(monkeypatch)

    upgraded = render(full_site)
    assert upgraded.written == [paths.vault]
    assert upgraded.new_passwords == {}
    assert checks.calls == 2, "the existing hashes are checked once, the slow way"
    secrets = decrypted_vault(paths.directory)
    assert list(secrets) == VAULT_VARIABLES
    assert {name: secrets[name] for name in VAULT_VARIABLES[:2]} == older
    assert list(secrets["_mailappliance__mailbox_password_hash_fingerprints"]) == ["alice@alpha.test",
                                                                                   "admin@alpha.test"]
    vault_bytes = paths.vault.read_bytes()
    assert render(full_site).written == []
    assert checks.calls == 2
    assert paths.vault.read_bytes() == vault_bytes


def test_hash_with_a_wrong_fingerprint_is_checked_the_slow_way(full_site: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    paths = render(full_site).paths
    secrets = decrypted_vault(paths.directory)
    fingerprints = secrets["_mailappliance__mailbox_password_hash_fingerprints"]
    fingerprints["alice@alpha.test"] = "0" * 64
    rewrite_vault(paths.directory, secrets)
    checks = CountingHashChecks(monkeypatch)
    render(full_site)
    assert checks.calls == 1
    again = decrypted_vault(paths.directory)
    # The hash still matches its password, so it is kept and its fingerprint repaired.
    assert again["mailappliance__mailbox_password_hashes"] == secrets["mailappliance__mailbox_password_hashes"]
    assert again["_mailappliance__mailbox_password_hash_fingerprints"]["alice@alpha.test"] != "0" * 64


def test_password_changed_by_hand_gets_a_new_hash(full_site: Path) -> None:
    paths = render(full_site).paths
    secrets = decrypted_vault(paths.directory)
    old_hash = secrets["mailappliance__mailbox_password_hashes"]["alice@alpha.test"]
    secrets["mailappliance__mailbox_passwords"]["alice@alpha.test"] = "chosen-by-hand-0123456789"
    rewrite_vault(paths.directory, secrets)
    result = render(full_site)
    assert result.new_passwords == {}
    hashed = decrypted_vault(paths.directory)["mailappliance__mailbox_password_hashes"]["alice@alpha.test"]
    assert hashed != old_hash
    assert vault.hash_matches("chosen-by-hand-0123456789", hashed)


@pytest.mark.parametrize(("name", "value"), [
    ("mailappliance__rspamd_controller_password_hash", "$1$notahash$atall"),
    ("mailappliance__redis_password", "has spaces and \"quotes\""),
    ("mailappliance__redis_password", 12345),
])
def test_invalid_service_secret_is_replaced(full_site: Path, name: str, value: object) -> None:
    paths = render(full_site).paths
    secrets = decrypted_vault(paths.directory)
    rewrite_vault(paths.directory, dict(secrets, **{name: value}))
    render(full_site)
    again = decrypted_vault(paths.directory)
    assert again[name] != value
    assert again["mailappliance__rspamd_controller_password"] == secrets["mailappliance__rspamd_controller_password"]
    assert vault.rspamd_hash_matches(again["mailappliance__rspamd_controller_password"],
                                     again["mailappliance__rspamd_controller_password_hash"])
    assert re.fullmatch(r"[A-Za-z0-9]{32,}", again["mailappliance__redis_password"])


# -- outbound: sending accounts and relay passwords ----------------------------------------------------------

def test_sending_accounts_get_generated_passwords_in_the_vault_only(outbound_site: Path) -> None:
    result = render(outbound_site)
    secrets = decrypted_vault(result.paths.directory)
    assert list(secrets) == VAULT_VARIABLES + OUTBOUND_VAULT_VARIABLES
    passwords = secrets["mailappliance__outbound_account_passwords"]
    hashes = secrets["mailappliance__outbound_account_password_hashes"]
    assert list(passwords) == list(hashes) == ["shop", "newsletter"]
    assert result.new_account_passwords == passwords
    assert list(result.new_passwords) == ["admin@acme.example"]
    for name, password in passwords.items():
        assert len(password) >= 24
        assert vault.hash_matches(password, hashes[name])
    plain = result.paths.site_vars.read_text() + result.paths.hosts.read_text()
    assert not [password for password in passwords.values() if password in plain]
    # The relay's password comes from its provider: nothing is made up for it.
    assert secrets["mailappliance__outbound_carrier_passwords"] == {}
    assert result.missing_carrier_passwords == ["isp1"]


def test_account_passwords_are_kept_and_go_with_their_account(outbound_site: Path, site_dir: Path) -> None:
    first = render(outbound_site)
    again = render(outbound_site)
    assert again.written == [] and again.new_account_passwords == {}
    text = (site_dir / "site.yml").read_text()
    start, end = text.index("    newsletter:"), text.index("      rate_per_minute: 6000\n") + 27
    third = render(write_site(site_dir, text[:start] + text[end:]))
    assert third.new_account_passwords == {}
    secrets = decrypted_vault(third.paths.directory)
    assert secrets["mailappliance__outbound_account_passwords"] == {"shop": first.new_account_passwords["shop"]}
    assert read_account_passwords("acme", Path("inventories")) == {"shop": first.new_account_passwords["shop"]}


def test_relay_password_set_in_the_vault_is_kept(outbound_site: Path, site_dir: Path) -> None:
    paths = render(outbound_site).paths
    secrets = decrypted_vault(paths.directory)
    secrets["mailappliance__outbound_carrier_passwords"] = {"isp1": ""}
    rewrite_vault(paths.directory, secrets)
    assert render(outbound_site).missing_carrier_passwords == ["isp1"]
    secrets["mailappliance__outbound_carrier_passwords"] = {"isp1": "from the provider: 7#x!", "gone": "old"}
    rewrite_vault(paths.directory, secrets)
    result = render(outbound_site)
    assert result.missing_carrier_passwords == []
    assert decrypted_vault(paths.directory)["mailappliance__outbound_carrier_passwords"] == {
        "isp1": "from the provider: 7#x!"}
    assert render(outbound_site).written == []
    # A carrier that no longer logs in takes its password with it.
    render(write_site(site_dir, (site_dir / "site.yml").read_text().replace("      username: acme-relay\n", "")))
    assert decrypted_vault(paths.directory)["mailappliance__outbound_carrier_passwords"] == {}


@pytest.mark.parametrize(("password", "problem"), [
    ("secret\nsmtp_sasl_auth_enable = no", "the password contains a line break (U+000A)"),
    ("secret\u2028x", "the password contains a line separator (U+2028)"),
    (12345678, "the password is not text"),
    (" secret", "the password has whitespace at its start or end"),
    ("x" * 257, "the password is longer than 256 characters"),
])
def test_hostile_relay_password_is_refused_and_nothing_written(outbound_site: Path, password: object,
                                                               problem: str) -> None:
    paths = render(outbound_site).paths
    secrets = decrypted_vault(paths.directory)
    secrets["mailappliance__outbound_carrier_passwords"] = {"isp1": password}
    rewrite_vault(paths.directory, secrets)
    before = {path: path.read_bytes() for path in paths.directory.rglob("*") if path.is_file()}
    with pytest.raises(UserError) as caught:
        render(outbound_site)
    assert caught.value.lines == (
        f"{paths.vault}: mailappliance__outbound_carrier_passwords.isp1: {problem}; set it again with "
        f"`ansible-vault edit {paths.vault}`, in quotes, as one line of printable text of at most 256 characters",)
    assert {path: path.read_bytes() for path in paths.directory.rglob("*") if path.is_file()} == before


def test_a_site_without_outbound_keeps_its_variables(full_site: Path) -> None:
    paths = render(full_site).paths
    assert "mailappliance__outbound" not in paths.site_vars.read_text()
    assert list(decrypted_vault(paths.directory)) == VAULT_VARIABLES


# -- archive: the checkpoint signing key ---------------------------------------------------------------------

def without_archive(site_dir: Path) -> Path:
    """ARCHIVE_SITE with its archive: section taken out."""
    return write_site(site_dir, ARCHIVE_SITE[:ARCHIVE_SITE.index("archive:\n")])


def public_key_of(paths) -> str | None:
    return yaml.safe_load(paths.site_vars.read_text()).get(ARCHIVE_PUBLIC_KEY)


def test_archive_signing_key_is_generated_once_into_the_vault_and_its_public_half_into_site_vars(
        archive_site: Path) -> None:
    result = render(archive_site)
    secrets = decrypted_vault(result.paths.directory)
    assert list(secrets) == VAULT_VARIABLES + [ARCHIVE_SIGNING_KEY]
    private = base64.b64decode(secrets[ARCHIVE_SIGNING_KEY], validate=True)
    public = base64.b64decode(public_key_of(result.paths), validate=True)
    assert len(private) == len(public) == 32
    # The public key in the plain file verifies what the vault's key signs.
    signature = Ed25519PrivateKey.from_private_bytes(private).sign(b"checkpoint 1")
    Ed25519PublicKey.from_public_bytes(public).verify(signature, b"checkpoint 1")
    plain = result.paths.site_vars.read_text() + result.paths.hosts.read_text()
    assert secrets[ARCHIVE_SIGNING_KEY] not in plain
    # Nothing about the key is shown: only logins get their passwords printed once.
    assert secrets[ARCHIVE_SIGNING_KEY] not in {*result.new_passwords.values(), *result.new_account_passwords.values()}
    again = render(archive_site)
    assert again.written == []
    assert decrypted_vault(result.paths.directory)[ARCHIVE_SIGNING_KEY] == secrets[ARCHIVE_SIGNING_KEY]


def test_removing_the_archive_keeps_its_key_and_public_key(archive_site: Path, site_dir: Path) -> None:
    paths = render(archive_site).paths
    key, public_key = decrypted_vault(paths.directory)[ARCHIVE_SIGNING_KEY], public_key_of(paths)

    render(without_archive(site_dir))
    assert decrypted_vault(paths.directory)[ARCHIVE_SIGNING_KEY] == key
    site_vars = yaml.safe_load(paths.site_vars.read_text())
    assert {name: value for name, value in site_vars.items() if name.startswith("mailappliance__archive")} == {
        "mailappliance__archive_enabled": False, ARCHIVE_PUBLIC_KEY: public_key}
    assert render(without_archive(site_dir)).written == []

    # Back again, the archive signs with the same key.
    render(write_site(site_dir, ARCHIVE_SITE))
    assert decrypted_vault(paths.directory)[ARCHIVE_SIGNING_KEY] == key
    assert public_key_of(paths) == public_key


def test_a_site_that_never_had_an_archive_gets_the_switch_only(full_site: Path) -> None:
    paths = render(full_site).paths
    site_vars = yaml.safe_load(paths.site_vars.read_text())
    assert [name for name in site_vars if name.startswith("mailappliance__archive")] == [
        "mailappliance__archive_enabled"]
    assert site_vars["mailappliance__archive_enabled"] is False
    assert ARCHIVE_SIGNING_KEY not in decrypted_vault(paths.directory)


def test_a_vault_of_an_older_version_gets_the_key_on_its_next_render(archive_site: Path, site_dir: Path) -> None:
    paths = render(without_archive(site_dir)).paths
    assert ARCHIVE_SIGNING_KEY not in decrypted_vault(paths.directory)
    assert render(write_site(site_dir, ARCHIVE_SITE)).written == [paths.site_vars, paths.vault]
    assert public_key_of(paths) == vault.signing_public_key(decrypted_vault(paths.directory)[ARCHIVE_SIGNING_KEY])


@pytest.mark.parametrize("key", [
    "not a key",
    base64.b64encode(b"k" * 31).decode(),
    base64.b64encode(b"k" * 64).decode(),
    12345,
    "",
    ["a list"],
], ids=["text", "31-bytes", "64-bytes", "number", "empty", "list"])
@pytest.mark.parametrize("with_archive", [True, False], ids=["archive", "archive-removed"])
def test_a_broken_signing_key_is_refused_and_nothing_written(archive_site: Path, site_dir: Path, key: object,
                                                             with_archive: bool) -> None:
    paths = render(archive_site).paths
    site_file = archive_site if with_archive else without_archive(site_dir)
    render(site_file)
    rewrite_vault(paths.directory, dict(decrypted_vault(paths.directory), **{ARCHIVE_SIGNING_KEY: key}))
    before = {path: path.read_bytes() for path in paths.directory.rglob("*") if path.is_file()}
    with pytest.raises(UserError) as caught:
        render(site_file)
    assert caught.value.lines == (
        f"{paths.vault}: mailappliance__archive_signing_key: is not an Ed25519 private key (32 bytes in base64); "
        "restore it from a backup of the vault, since the archive's checkpoints verify only with the key that signed "
        "them, or remove the variable to start a new key",)
    assert {path: path.read_bytes() for path in paths.directory.rglob("*") if path.is_file()} == before
