"""Mail that an authenticated user sends is DKIM-signed for the sender's domain, and the signature
verifies against the record the appliance publishes."""

from __future__ import annotations

import pytest

from mailprobe import (
    ALICE,
    BOB,
    dkim_failure,
    dkim_public_key,
    dkim_signature_tags,
    dkim_txt_from_private_key,
    dkim_txt_from_zone_snippet,
    mailbox_dir,
    message_bytes,
    new_token,
    read_bytes,
    wait_for_messages,
)

DKIM_DIR = "/var/lib/rspamd/dkim"
SELECTOR = "mail"


def published_record(host, domain: str) -> bytes:
    return dkim_txt_from_zone_snippet(host.file(f"{DKIM_DIR}/{domain}.{SELECTOR}.pub").content_string)


@pytest.mark.parametrize("domain", ["alpha.test", "beta.test"])
def test_published_record_matches_the_signing_key(host, domain):
    published = published_record(host, domain)
    signing = dkim_txt_from_private_key(read_bytes(host, f"{DKIM_DIR}/{domain}.{SELECTOR}.key"))
    assert published.startswith(b"v=DKIM1"), published
    assert dkim_public_key(published) == dkim_public_key(signing), f"{domain}: .pub does not match .key"


def test_submitted_mail_carries_a_valid_dkim_signature(host, appliance):
    token = new_token()
    out = appliance.submit(ALICE, ALICE, BOB, token)
    assert out.accepted, str(out)
    files = wait_for_messages(host, token, mailbox_dir(BOB))
    assert len(files) == 1, f"expected one message in {mailbox_dir(BOB)}, found {files}"
    raw = message_bytes(host, files[0])
    signatures = dkim_signature_tags(raw)
    assert any(
        s.get("d") == "alpha.test" and s.get("s") == SELECTOR for s in signatures
    ), f"no DKIM-Signature with d=alpha.test s={SELECTOR}: {signatures}"
    failure = dkim_failure(raw, "alpha.test", SELECTOR, published_record(host, "alpha.test"))
    assert failure is None, f"{failure}\n{raw.decode(errors='replace')}"
