"""reconcile: the mail log's accepted messages against the archive, keyed by (instance, queue id)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from mailappliance.archive.reconcile import read_mail_log, reconcile
from mailappliance.archive.store import Archive
from test_archive_support import envelope, make_archive, message

SINCE = datetime(2026, 12, 3, tzinfo=timezone.utc)
UNTIL = datetime(2026, 12, 4, tzinfo=timezone.utc)

# journalctl -o short-iso -u 'postfix*' as the appliance writes it: the staff instance (postfix, with its
# submission service), a channel instance (postfix-orders), a deferred message coming back to the active
# queue, a bounce Postfix generated, a rejected client, and noise.
MAIL_LOG = """\
-- Journal begins at Tue 2026-12-01 00:00:01 UTC. --
2026-12-03T09:59:58+00:00 mail postfix/smtpd[2101]: connect from mx.partner.example[198.51.100.25]
2026-12-03T09:59:59+00:00 mail postfix/smtpd[2101]: 4Qk1Zr3bYFz9sWb: client=mx.partner.example[198.51.100.25]
2026-12-03T10:00:00+00:00 mail postfix/cleanup[2102]: 4Qk1Zr3bYFz9sWb: message-id=<a1@partner.example>
2026-12-03T10:00:00+00:00 mail postfix/qmgr[1990]: 4Qk1Zr3bYFz9sWb: from=<bob@partner.example>, size=2301, nrcpt=2 (queue active)
2026-12-03T10:00:01+00:00 mail postfix/lmtp[2103]: 4Qk1Zr3bYFz9sWb: to=<alice@acme.example>, relay=mail.acme.example[private/dovecot-lmtp], delay=1.2, status=sent (250 2.0.0 Ok)
2026-12-03T10:00:01+00:00 mail postfix/qmgr[1990]: 4Qk1Zr3bYFz9sWb: removed
2026-12-03T10:05:00+00:00 mail postfix/submission/smtpd[2201]: 4Qk1b53vTzz9sWc: client=unknown[192.0.2.40], sasl_method=PLAIN, sasl_username=alice@acme.example
2026-12-03T10:05:00+00:00 mail postfix/cleanup[2102]: 4Qk1b53vTzz9sWc: message-id=<b2@acme.example>
2026-12-03T10:05:00+00:00 mail postfix/qmgr[1990]: 4Qk1b53vTzz9sWc: from=<alice@acme.example>, size=5120, nrcpt=1 (queue active)
2026-12-03T10:05:03+00:00 mail postfix/smtp[2204]: 4Qk1b53vTzz9sWc: to=<carol@customer.example>, relay=none, delay=3, status=deferred (connect to mx.customer.example[203.0.113.5]:25: Connection timed out)
2026-12-03T11:05:03+00:00 mail postfix/qmgr[1990]: 4Qk1b53vTzz9sWc: from=<alice@acme.example>, size=5120, nrcpt=1 (queue active)
2026-12-03T11:05:04+00:00 mail postfix/smtp[2301]: 4Qk1b53vTzz9sWc: to=<carol@customer.example>, relay=mx.customer.example[203.0.113.5]:25, delay=3604, status=sent (250 ok)
2026-12-03T12:00:00+00:00 mail postfix-orders/submission/smtpd[3101]: 4Qk1cL0mPRz9sWd: client=unknown[192.0.2.41], sasl_method=PLAIN, sasl_username=shop@orders.acme.example
2026-12-03T12:00:00+00:00 mail postfix-orders/cleanup[3102]: 4Qk1cL0mPRz9sWd: message-id=<o1@orders.acme.example>
2026-12-03T12:00:00+00:00 mail postfix-orders/qmgr[3000]: 4Qk1cL0mPRz9sWd: from=<shop@orders.acme.example>, size=3300, nrcpt=1 (queue active)
2026-12-03T12:00:01+00:00 mail postfix-orders/cleanup[3102]: 4Qk1b53vTzz9sWc: message-id=<o2@orders.acme.example>
2026-12-03T12:00:01+00:00 mail postfix-orders/qmgr[3000]: 4Qk1b53vTzz9sWc: from=<shop@orders.acme.example>, size=3400, nrcpt=1 (queue active)
2026-12-03T12:00:02+00:00 mail postfix-orders/cleanup[3102]: 4Qk1cM1nQSz9sWe: message-id=<o3@orders.acme.example>
2026-12-03T12:00:02+00:00 mail postfix-orders/qmgr[3000]: 4Qk1cM1nQSz9sWe: from=<shop@orders.acme.example>, size=3500, nrcpt=1 (queue active)
2026-12-03T13:00:00+00:00 mail postfix/bounce[2401]: 4Qk1dD2zz1z9sWf: sender non-delivery notification: 4Qk1dF5yy2z9sWg
2026-12-03T13:00:00+00:00 mail postfix/cleanup[2102]: 4Qk1dF5yy2z9sWg: message-id=<20261203130000.4Qk1dF5yy2z9sWg@mail.acme.example>
2026-12-03T13:00:00+00:00 mail postfix/qmgr[1990]: 4Qk1dF5yy2z9sWg: from=<>, size=4200, nrcpt=1 (queue active)
2026-12-03T14:00:00+00:00 mail postfix/smtpd[2501]: NOQUEUE: reject: RCPT from unknown[203.0.113.66]: 554 5.7.1 Relay access denied; from=<spam@bad.example> to=<x@elsewhere.example> proto=ESMTP helo=<bad>
2026-12-04T00:00:05+00:00 mail postfix/qmgr[1990]: 4Qk1eA0aa3z9sWh: from=<late@partner.example>, size=100, nrcpt=1 (queue active)
"""


def populate(archive: Archive) -> None:
    at = datetime(2026, 12, 3, 10, 0, tzinfo=timezone.utc)
    # Staff: the inbound message and the submitted one (deferred, then sent: accepted once).
    archive.ingest(message(body="in"), envelope("4Qk1Zr3bYFz9sWb", direction="inbound", received=at))
    archive.ingest(message(body="sub"), envelope("4Qk1b53vTzz9sWc", received=at))
    # The orders channel: the same queue id as a staff message is another message; one archived twice (two
    # different contents under one key), one missing (4Qk1cM1nQSz9sWe).
    orders = {"instance": "postfix-orders", "channel": "orders", "received": at}
    archive.ingest(message(body="o1"), envelope("4Qk1cL0mPRz9sWd", **orders))  # type: ignore[arg-type]
    archive.ingest(message(body="o2"), envelope("4Qk1b53vTzz9sWc", **orders))  # type: ignore[arg-type]
    archive.ingest(message(body="o2 again, changed"), envelope("4Qk1b53vTzz9sWc", **orders))  # type: ignore[arg-type]
    # Archived, but Postfix never accepted it (refused after the milter had it).
    archive.ingest(message(body="refused later"), envelope("4Qk1zz9zz9z9sWz", received=at))


def test_read_mail_log_keys_by_instance_and_counts_a_deferred_message_once() -> None:
    found = read_mail_log(MAIL_LOG.splitlines(), SINCE, UNTIL)
    assert sorted(found.accepted) == [
        ("postfix", "4Qk1Zr3bYFz9sWb"), ("postfix", "4Qk1b53vTzz9sWc"), ("postfix", "4Qk1dF5yy2z9sWg"),
        ("postfix-orders", "4Qk1b53vTzz9sWc"), ("postfix-orders", "4Qk1cL0mPRz9sWd"),
        ("postfix-orders", "4Qk1cM1nQSz9sWe")]
    staff = found.accepted[("postfix", "4Qk1b53vTzz9sWc")]
    assert (staff.time, staff.sender, staff.size, staff.message_id) == (
        "2026-12-03T10:05:00.000000Z", "alice@acme.example", 5120, "<b2@acme.example>")
    # After the range: seen, but not counted as accepted in it.
    assert ("postfix", "4Qk1eA0aa3z9sWh") in found.ever_accepted
    assert found.unread == 1


def test_reconcile_counts_missing_twice_and_never_accepted(tmp_path: Path) -> None:
    with make_archive(tmp_path) as archive:
        populate(archive)
        result = reconcile(archive, MAIL_LOG.splitlines(), SINCE, UNTIL)
    assert (result.accepted, result.archived) == (6, 4)
    assert [(m["instance"], m["queue_id"]) for m in result.missing] == [
        ("postfix", "4Qk1dF5yy2z9sWg"), ("postfix-orders", "4Qk1cM1nQSz9sWe")]
    assert "internal_mail_filter_classes" in result.missing[0]["note"] and result.missing[1]["note"] == ""
    assert [(t["instance"], t["queue_id"], len(t["records"])) for t in result.twice] == [
        ("postfix-orders", "4Qk1b53vTzz9sWc", 2)]
    assert [(n["instance"], n["queue_id"]) for n in result.never_accepted] == [("postfix", "4Qk1zz9zz9z9sWz")]
    assert not result.ok


def test_reconcile_all_archived_is_ok_and_reads_journalctl_short_format(tmp_path: Path) -> None:
    lines = ["Dec 03 10:00:00 mail postfix/qmgr[1990]: 4Qk1Zr3bYFz9sWb: from=<bob@partner.example>, size=2301, "
             "nrcpt=2 (queue active)"]
    with make_archive(tmp_path) as archive:
        archive.ingest(message(body="in"), envelope("4Qk1Zr3bYFz9sWb", direction="inbound",
                                                    received=datetime(2026, 12, 3, 10, tzinfo=timezone.utc)))
        # The short format has local time and no year: a range of several days keeps the test zone-proof.
        result = reconcile(archive, lines, datetime(2026, 12, 1, tzinfo=timezone.utc),
                           datetime(2026, 12, 6, tzinfo=timezone.utc))
    assert (result.accepted, result.archived, result.missing, result.twice, result.never_accepted) == (1, 1, [], [],
                                                                                                          [])
    assert result.ok


def test_a_channels_hand_over_to_staff_is_not_a_new_message(tmp_path) -> None:
    """Mail a channel took for a hosted domain reaches the staff instance through its hand-over listener; the
    channel journaled it, so the staff instance's queue id for it is not counted as accepted."""
    from datetime import datetime, timezone

    from mailappliance.archive.reconcile import read_mail_log

    lines = [
        "2026-12-03T10:00:01+00:00 mail postfix-orders/submission/smtpd[10]: AAAAA1: client=x[192.0.2.1]",
        "2026-12-03T10:00:01+00:00 mail postfix-orders/qmgr[11]: AAAAA1: from=<o@a.test>, size=100, nrcpt=1 "
        "(queue active)",
        "2026-12-03T10:00:02+00:00 mail postfix/handover/smtpd[12]: BBBBB2: client=localhost[127.0.0.1]",
        "2026-12-03T10:00:02+00:00 mail postfix/qmgr[13]: BBBBB2: from=<o@a.test>, size=900, nrcpt=1 "
        "(queue active)",
    ]
    found = read_mail_log(lines, datetime(2026, 12, 3, tzinfo=timezone.utc), datetime(2026, 12, 4, tzinfo=timezone.utc))
    assert sorted(found.accepted) == [("postfix-orders", "AAAAA1")]
