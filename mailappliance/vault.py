"""Site secrets: mailbox passwords, their Dovecot hashes, and ansible-vault encryption of the file holding them."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ansible.errors import AnsibleError
from ansible.parsing.vault import VaultLib, VaultSecret
from passlib.hash import sha512_crypt

from mailappliance.errors import UserError

# Dovecot reads the scheme from this prefix; SHA512-CRYPT is verified with the system crypt(3).
HASH_PREFIX = "{SHA512-CRYPT}"
# The passwords are 32 random URL-safe characters (192 bits), so key stretching adds no real protection;
# a modest round count keeps each IMAP/SMTP login cheap while still writing an explicit rounds= field.
HASH_ROUNDS = 10000
VAULT_ID = "default"


def new_password() -> str:
    """A fresh mailbox password: 24 random bytes as 32 URL-safe characters."""
    return secrets.token_urlsafe(24)


def hash_password(password: str) -> str:
    return HASH_PREFIX + sha512_crypt.using(rounds=HASH_ROUNDS).hash(password)


def hash_matches(password: str, hashed: str) -> bool:
    if not hashed.startswith(HASH_PREFIX):
        return False
    try:
        return sha512_crypt.verify(password, hashed[len(HASH_PREFIX):])
    except ValueError:
        return False


def read_vault_password(path: Path) -> bytes | None:
    """The vault password stored at `path`, or None if it does not exist yet."""
    try:
        password = path.read_bytes().strip()
    except FileNotFoundError:
        return None
    if not password:
        raise UserError(f"{path}: the vault password file is empty; restore it from a backup, or delete it and "
                        "vault.yml beside it to generate new mailbox passwords")
    return password


def create_vault_password(path: Path) -> bytes:
    """Generate the site's vault password once, readable by its owner only."""
    password = secrets.token_urlsafe(48).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never replace an existing password, which would make the vault unreadable.
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "wb") as stream:
        stream.write(password + b"\n")
    return password


def encrypt(plaintext: str, password: bytes) -> bytes:
    vault = VaultLib(secrets=[(VAULT_ID, VaultSecret(password))])
    return vault.encrypt(plaintext.encode("utf-8"))


def decrypt(ciphertext: bytes, password: bytes, vault_path: Path, password_path: Path) -> str:
    vault = VaultLib(secrets=[(VAULT_ID, VaultSecret(password))])
    try:
        return vault.decrypt(ciphertext).decode("utf-8")
    except (AnsibleError, UnicodeDecodeError):
        raise UserError(
            f"{vault_path}: cannot be decrypted with {password_path}; restore the matching password file, "
            "or delete vault.yml to generate new mailbox passwords"
        ) from None
