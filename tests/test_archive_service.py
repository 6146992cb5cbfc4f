"""The journaling service: what the milter's journal does with a message when the store takes it, and when it
does not (defer: raise, so Postfix answers 451; queue: keep it in the spool until the store is back)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailappliance.archive import milter, service
from mailappliance.archive.store import Archive

HOSTED = frozenset({"alpha.test"})
RAW = b"From: jo@example.com\r\nTo: ann@alpha.test\r\nSubject: hello\r\n\r\nA word or two.\r\n"


def envelope(**changes: str) -> milter.Envelope:
    values = {"instance": "postfix", "queue_id": "4AbC1", "sender": "jo@example.com",
              "recipients": ["ann@alpha.test", "hidden@alpha.test"], "client_address": "192.0.2.7",
              "daemon_port": "25"} | changes
    return milter.Envelope(**values)  # type: ignore[arg-type]


def settings(tmp_path: Path, on_failure: str) -> service.Settings:
    config = tmp_path / "archive.json"
    config.write_text(json.dumps({"store": str(tmp_path / "store"), "on_failure": on_failure,
                                  "spool": str(tmp_path / "spool"), "hosted_domains": sorted(HOSTED)}))
    return service.Settings.load(config)


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, "inbound"),
    ({"daemon_port": ""}, "local"),
    # What Postfix 3.7's cleanup hands a milter for sendmail and bounces: 127.0.0.1, port "0".
    ({"daemon_port": "0", "client_address": "127.0.0.1"}, "local"),
    ({"account": "ann@alpha.test", "daemon_port": "587", "recipients": ["bob@alpha.test"]}, "internal"),
    ({"account": "ann@alpha.test", "daemon_port": "587", "recipients": ["bob@alpha.test", "x@example.org"]},
     "outbound"),
    ({"account": "shop", "daemon_port": "2587", "instance": "postfix-orders", "recipients": ["x@example.org"]},
     "outbound"),
])
def test_direction(changes: dict[str, str], expected: str) -> None:
    assert service.direction(envelope(**changes), HOSTED) == expected


def test_a_message_lands_in_the_store_with_every_recipient(tmp_path: Path) -> None:
    Archive(tmp_path / "store", create=True).close()
    journal = service.Journal(settings(tmp_path, "defer"))
    journal(RAW, envelope(instance="postfix-orders", account="shop", recipients=["x@example.org", "bcc@alpha.test"]))
    with Archive(tmp_path / "store") as archive:
        [record] = archive.records([1])
        assert (record.channel, record.account, record.direction) == ("orders", "shop", "outbound")
        assert list(record.recipients) == ["x@example.org", "bcc@alpha.test"]
        assert archive.read_message(record.sha256) == RAW


def test_defer_raises_when_the_store_is_missing(tmp_path: Path) -> None:
    journal = service.Journal(settings(tmp_path, "defer"))
    with pytest.raises(Exception, match="not found"):
        journal(RAW, envelope())
    assert not (tmp_path / "spool").exists()


def test_queue_spools_until_the_store_is_back(tmp_path: Path) -> None:
    journal = service.Journal(settings(tmp_path, "queue"))
    journal(RAW, envelope(queue_id="Q1"))
    journal(RAW + b"again\r\n", envelope(queue_id="Q2"))
    assert sorted(p.suffix for p in (tmp_path / "spool").iterdir()) == [".eml", ".eml", ".json", ".json"]
    assert journal.drain_spool() == 0  # still no store: everything stays

    Archive(tmp_path / "store", create=True).close()
    assert journal.drain_spool() == 2
    assert list((tmp_path / "spool").iterdir()) == []
    with Archive(tmp_path / "store") as archive:
        queue_ids = [record.queue_id for record in archive.records([1, 2])]
    assert queue_ids == ["Q1", "Q2"]


def test_keys_in_the_vaults_base64_form_are_read(tmp_path: Path) -> None:
    """The role writes the vault's base64 text into the key files; both halves must load and match."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mailappliance.archive import keys

    key = Ed25519PrivateKey.generate()
    private = tmp_path / "archive-signing.key"
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    private.write_text(base64.b64encode(raw).decode() + "\n")
    private.chmod(0o600)
    public = tmp_path / "archive-public.key"
    public.write_text(base64.b64encode(keys.raw_public(key.public_key())).decode() + "\n")
    assert keys.key_id(keys.load_signing_key(private).public_key()) == keys.key_id(keys.load_public_key(public))


def test_checkpoint_if_changed_signs_only_new_entries(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mailappliance.archive import cli

    key_file = tmp_path / "key.pem"
    key_file.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_file.chmod(0o600)
    store = str(tmp_path / "store")
    assert cli.main(["init", "--store", store]) == 0
    args = ["checkpoint", "--store", store, "--key", str(key_file), "--if-changed", "--json"]
    signed = []
    for _ in range(2):
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.main(args) == 0
        signed.append(json.loads(out.getvalue())["signed"])
    assert signed == [True, False]
