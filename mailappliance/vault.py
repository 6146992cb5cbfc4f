"""Site secrets: mailbox passwords and their Dovecot hashes, the Rspamd controller and Redis passwords, the archive's
checkpoint signing key, and ansible-vault encryption of the file holding them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import string
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ansible.errors import AnsibleError
from ansible.parsing.vault import VaultLib, VaultSecret
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from passlib.hash import sha512_crypt

from mailappliance.errors import UserError

# Dovecot reads the scheme from this prefix; SHA512-CRYPT is verified with the system crypt(3).
HASH_PREFIX = "{SHA512-CRYPT}"
# The passwords are 32 random URL-safe characters (192 bits), so key stretching adds no real protection;
# a modest round count keeps each IMAP/SMTP login cheap while still writing an explicit rounds= field.
HASH_ROUNDS = 10000
# Below this many hashes per CPU, starting worker processes costs more than it saves.
_HASHES_PER_WORKER = 100
VAULT_ID = "default"

# Rspamd's "pbkdf2" scheme as `rspamadm pw` writes it: $1$<salt>$<key>, PBKDF2 with keyed BLAKE2b as the PRF.
RSPAMD_PBKDF_ID = 1
RSPAMD_PBKDF_ROUNDS = 16000
RSPAMD_SALT_BYTES = 20
RSPAMD_KEY_BYTES = 32
# Rspamd's base32: the z-base-32 alphabet, bits taken from the least significant end.
ZBASE32_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
# BLAKE2b takes keys of up to 64 bytes; Rspamd hashes a longer password down to one first.
_BLAKE2B_MAX_KEY = 64

# Redis's requirepass and Rspamd's UCL both take letters and digits without quoting or escaping.
REDIS_PASSWORD_ALPHABET = string.ascii_letters + string.digits
REDIS_PASSWORD_LENGTH = 40


def new_password() -> str:
    """A fresh mailbox or controller password: 24 random bytes as 32 URL-safe characters."""
    return secrets.token_urlsafe(24)


def new_redis_password() -> str:
    """A fresh Redis password: 40 letters and digits (238 bits)."""
    return "".join(secrets.choice(REDIS_PASSWORD_ALPHABET) for _ in range(REDIS_PASSWORD_LENGTH))


def new_fingerprint_key() -> str:
    """The vault's key for hash fingerprints: 32 random bytes as hex."""
    return secrets.token_hex(32)


def new_signing_key() -> str:
    """A fresh Ed25519 private key for the archive's checkpoints: its raw 32 bytes in base64."""
    return base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode("ascii")


def signing_public_key(private_key: str) -> str | None:
    """The Ed25519 public key (raw 32 bytes in base64) of a key new_signing_key wrote; None when `private_key` is not
    one."""
    try:
        raw = base64.b64decode(private_key, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 32:
        return None
    public = Ed25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
    return base64.b64encode(public).decode("ascii")


def hash_fingerprint(key: str, password: str, hashed: str) -> str:
    """A keyed fingerprint of a password and its hash, so a later render can tell, without re-running the slow
    hash, that the two still belong together. A hash holds no NUL, so no two pairs give the same message."""
    message = password.encode("utf-8") + b"\0" + hashed.encode("utf-8")
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def hash_password(password: str) -> str:
    return HASH_PREFIX + sha512_crypt.using(rounds=HASH_ROUNDS).hash(password)


def hash_passwords(passwords: list[str]) -> list[str]:
    """hash_password of each; a site's first render hashes every mailbox, so many are spread over the CPUs
    (crypt(3) holds the GIL, so threads would not help)."""
    workers = min(os.cpu_count() or 1, len(passwords) // _HASHES_PER_WORKER)
    if workers < 2:
        return [hash_password(password) for password in passwords]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(hash_password, passwords, chunksize=_HASHES_PER_WORKER))


def hash_matches(password: str, hashed: str) -> bool:
    if not hashed.startswith(HASH_PREFIX):
        return False
    try:
        return sha512_crypt.verify(password, hashed[len(HASH_PREFIX):])
    except ValueError:
        return False


def rspamd_hash(password: str, salt: bytes | None = None) -> str:
    """`password` hashed for Rspamd's controller (password = / enable_password =), as `rspamadm pw` does."""
    salt = secrets.token_bytes(RSPAMD_SALT_BYTES) if salt is None else salt
    key = _rspamd_pbkdf2(password.encode("utf-8"), salt, RSPAMD_PBKDF_ROUNDS, RSPAMD_KEY_BYTES)
    return f"${RSPAMD_PBKDF_ID}${zbase32_encode(salt)}${zbase32_encode(key)}"


def rspamd_hash_matches(password: str, hashed: str) -> bool:
    parts = hashed.split("$")
    if len(parts) != 4 or parts[0] or parts[1] != str(RSPAMD_PBKDF_ID):
        return False
    try:
        salt = zbase32_decode(parts[2], RSPAMD_SALT_BYTES)
        key = zbase32_decode(parts[3], RSPAMD_KEY_BYTES)
    except ValueError:
        return False
    expected = _rspamd_pbkdf2(password.encode("utf-8"), salt, RSPAMD_PBKDF_ROUNDS, RSPAMD_KEY_BYTES)
    return hmac.compare_digest(key, expected)


def zbase32_encode(data: bytes) -> str:
    """Rspamd's base32: the bytes as one little-endian number, five bits per character, lowest bits first."""
    number = int.from_bytes(data, "little")
    return "".join(ZBASE32_ALPHABET[(number >> shift) & 0x1F] for shift in range(0, len(data) * 8, 5))


def zbase32_decode(text: str, length: int) -> bytes:
    """The `length` bytes `text` encodes with zbase32_encode; ValueError for anything else."""
    if len(text) != -(-length * 8 // 5):
        raise ValueError(f"expected {-(-length * 8 // 5)} characters for {length} bytes, got {len(text)}")
    number = 0
    for position, char in enumerate(text):
        value = ZBASE32_ALPHABET.find(char)
        if value < 0:
            raise ValueError(f"{char!r} is not a zbase32 character")
        number |= value << (5 * position)
    if number >> (length * 8):
        raise ValueError("bits set beyond the encoded bytes")
    return number.to_bytes(length, "little")


def _rspamd_pbkdf2(password: bytes, salt: bytes, rounds: int, length: int) -> bytes:
    """PBKDF2 with keyed BLAKE2b-512 as the PRF (not HMAC), as Rspamd's cryptobox computes it."""
    if len(password) > _BLAKE2B_MAX_KEY:
        password = hashlib.blake2b(password).digest()
    output = b""
    counter = 1
    while len(output) < length:
        block = hashlib.blake2b(salt + counter.to_bytes(4, "big"), key=password).digest()
        mixed = int.from_bytes(block, "big")
        for _ in range(rounds - 1):
            block = hashlib.blake2b(block, key=password).digest()
            mixed ^= int.from_bytes(block, "big")
        output += mixed.to_bytes(len(block), "big")
        counter += 1
    return output[:length]


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
