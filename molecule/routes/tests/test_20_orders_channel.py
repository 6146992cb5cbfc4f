"""A sending account submits on its channel's port and the message leaves through the orders instance to the
route's primary carrier: DKIM-signed with the channel's selector and signing domain, with a Return-Path in the
channel's bounce domain that names the account and the recipient (VERP)."""

from __future__ import annotations

from email.utils import parseaddr

from mailprobe import build_message, dkim_failure, dkim_signature_tags, dkim_txt_from_zone_snippet, new_token

from conftest import ORDERS_PORT, ORDERS_SENDER, OUTSIDE_DOMAIN, SITE_DOMAIN
from routeprobe import message_id, wait_for_stored

SELECTOR = "orders"


def published_record(published_dir) -> bytes:
    """The DKIM record deploy published for the channel's key, which `mailappliance dns plan` puts into DNS."""
    dkim_dir = published_dir / "dkim"
    found = sorted(dkim_dir.glob(f"*{SELECTOR}*.pub")) if dkim_dir.is_dir() else []
    assert len(found) == 1, (f"expected one published DKIM record of selector {SELECTOR} in {dkim_dir}, found "
                             f"{[p.name for p in found]} (all: {sorted(p.name for p in dkim_dir.glob('*'))})")
    return dkim_txt_from_zone_snippet(found[0].read_text())


def test_an_account_sends_through_its_channel_to_the_primary_carrier(appliance, carriers, published_dir):
    token = new_token()
    local = f"someone-{token[-8:]}"
    recipient = f"{local}@{OUTSIDE_DOMAIN}"
    out = appliance.submit(ORDERS_PORT, "shop", ORDERS_SENDER, recipient,
                           build_message(ORDERS_SENDER, recipient, token))
    assert out.accepted, str(out)

    stored = wait_for_stored(list(carriers.values()), token)
    assert [s.carrier for s in stored] == ["isp1"], f"expected the message once, at isp1 (primary): {stored}"
    assert stored[0].message_id == message_id(token), stored[0]
    raw = carriers["isp1"].read(stored[0])

    signatures = dkim_signature_tags(raw)
    assert any(s.get("s") == SELECTOR and s.get("d") == SITE_DOMAIN for s in signatures), (
        f"no DKIM-Signature with s={SELECTOR}; d={SITE_DOMAIN}: {signatures}")
    failure = dkim_failure(raw, SITE_DOMAIN, SELECTOR, published_record(published_dir))
    assert failure is None, f"{failure}\n{raw.decode(errors='replace')}"

    # The envelope sender, as the carrier's virtual(8) wrote it into Return-Path. Its exact form is the role's; it
    # must be in the channel's bounce domain and name the account and the recipient, so a bounce says whose it is.
    return_path = parseaddr(stored[0].return_path)[1]
    assert return_path.endswith(f"@{SITE_DOMAIN}"), f"Return-Path {stored[0].return_path!r} not in {SITE_DOMAIN}"
    verp = return_path.rpartition("@")[0]
    assert "shop" in verp, f"Return-Path {return_path!r} does not name the account shop"
    assert local in verp and OUTSIDE_DOMAIN in verp, f"Return-Path {return_path!r} does not name {recipient}"
