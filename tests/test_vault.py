"""Secrets made by mailappliance/vault.py: Rspamd's controller hash format, the Redis password, hash fingerprints."""

from __future__ import annotations

import hashlib
import re

import pytest

from mailappliance import vault


@pytest.mark.parametrize(("data", "text"), [
    (b"", ""),
    # One byte: its low five bits, then its high three.
    (b"\x00", "yy"),
    (b"\x01", "by"),
    (b"\xff", "98"),
    # 0x0100 read little-endian is 256 = 8 << 5: only the second character is non-zero.
    (b"\x00\x01", "yeyy"),
    # Five bytes fill exactly eight characters; 0x1f in the low bits of the first byte is the last letter.
    (b"\x1f\x00\x00\x00\x00", "9yyyyyyy"),
])
def test_zbase32_is_little_endian(data: bytes, text: str) -> None:
    assert vault.zbase32_encode(data) == text
    assert vault.zbase32_decode(text, len(data)) == data


def test_zbase32_lengths_match_rspamd() -> None:
    assert len(vault.zbase32_encode(bytes(vault.RSPAMD_SALT_BYTES))) == 32
    assert len(vault.zbase32_encode(bytes(vault.RSPAMD_KEY_BYTES))) == 52


@pytest.mark.parametrize("text", ["yyy", "yl", "99"])
def test_zbase32_decode_refuses_what_it_never_writes(text: str) -> None:
    # Wrong length, a letter outside the alphabet, bits beyond the single byte.
    with pytest.raises(ValueError):
        vault.zbase32_decode(text, 1)


def test_rspamd_kdf_is_pbkdf2_with_keyed_blake2b() -> None:
    """Two rounds spelled out: U1 = BLAKE2b(salt || 1, key=password), U2 = BLAKE2b(U1, key=password)."""
    password, salt = b"secret", bytes(range(20))
    first = hashlib.blake2b(salt + b"\x00\x00\x00\x01", key=password).digest()
    second = hashlib.blake2b(first, key=password).digest()
    assert vault._rspamd_pbkdf2(password, salt, 1, 32) == first[:32]
    assert vault._rspamd_pbkdf2(password, salt, 2, 32) == bytes(a ^ b for a, b in zip(first, second))[:32]


def test_rspamd_kdf_hashes_long_passwords_into_the_key() -> None:
    password, salt = b"p" * 65, bytes(20)
    key = hashlib.blake2b(password).digest()
    assert vault._rspamd_pbkdf2(password, salt, 1, 32) == hashlib.blake2b(salt + b"\x00\x00\x00\x01",
                                                                         key=key).digest()[:32]


def test_rspamd_hash_has_rspamadm_pw_format_and_verifies() -> None:
    hashed = vault.rspamd_hash("correct horse")
    assert re.fullmatch(r"\$1\$[ybndrfg8ejkmcpqxot1uwisza345h769]{32}\$[ybndrfg8ejkmcpqxot1uwisza345h769]{52}", hashed)
    assert vault.rspamd_hash_matches("correct horse", hashed)
    assert not vault.rspamd_hash_matches("correct horsf", hashed)
    assert vault.rspamd_hash("correct horse") != hashed, "every hash has its own salt"


def test_rspamd_hash_is_determined_by_password_and_salt() -> None:
    salt = bytes(range(20))
    assert vault.rspamd_hash("q1", salt) == vault.rspamd_hash("q1", salt)
    assert vault.rspamd_hash("q1", salt).startswith(f"$1${vault.zbase32_encode(salt)}$")


@pytest.mark.parametrize("hashed", ["", "$2$abc$def", "$1$short$key", "$1$" + "y" * 32 + "$" + "!" * 52, "plain"])
def test_rspamd_hash_matches_refuses_malformed_hashes(hashed: str) -> None:
    assert not vault.rspamd_hash_matches("q1", hashed)


def test_redis_password_needs_no_quoting() -> None:
    passwords = {vault.new_redis_password() for _ in range(20)}
    assert len(passwords) == 20
    assert all(re.fullmatch(r"[A-Za-z0-9]{32,}", password) for password in passwords)


def test_hash_fingerprint_binds_key_password_and_hash() -> None:
    key = vault.new_fingerprint_key()
    fingerprint = vault.hash_fingerprint(key, "pw", "{SHA512-CRYPT}$6$x")
    assert fingerprint == vault.hash_fingerprint(key, "pw", "{SHA512-CRYPT}$6$x")
    assert fingerprint != vault.hash_fingerprint(key, "pw2", "{SHA512-CRYPT}$6$x")
    assert fingerprint != vault.hash_fingerprint(key, "pw", "{SHA512-CRYPT}$6$y")
    assert fingerprint != vault.hash_fingerprint(vault.new_fingerprint_key(), "pw", "{SHA512-CRYPT}$6$x")


def test_many_passwords_are_hashed_in_order() -> None:
    passwords = [f"password-{number}" for number in range(250)]
    hashes = vault.hash_passwords(passwords)
    assert len(hashes) == len(passwords)
    assert all(vault.hash_matches(password, hashed) for password, hashed in zip(passwords[::50], hashes[::50]))


def test_rspamd_accepts_what_rspamadm_wrote() -> None:
    # Made on the appliance with `rspamadm pw -t pbkdf2 -p testpw` (Rspamd 3.4, Debian 12).
    written = "$1$hwernzddhxgwfywkqctxjsiy7niscys5$5mcie8yfjm4w9wr8ecknzyydrjrusat5ft686nf7mng3gjidxddb"
    assert vault.rspamd_hash_matches("testpw", written)
    assert not vault.rspamd_hash_matches("testpx", written)
