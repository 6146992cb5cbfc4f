"""Retention policies, legal holds, deletion as log entries, and tiering into cold packs."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from mailappliance.archive import keys, log, packs, retention
from mailappliance.archive.errors import ArchiveError
from mailappliance.archive.retention import Policy, Rule
from mailappliance.archive.search import Criteria, search
from mailappliance.archive.store import Archive
from mailappliance.archive.verify import verify
from test_archive_support import NOW, days_ago, envelope, file_of, make_archive, make_keys, message


def test_policy_precedence_most_specific_then_longest() -> None:
    policy = Policy.from_dict({"default_days": 2557, "rules": [
        {"direction": "inbound", "days": 1000},
        {"domain": "acme.example", "days": 3000},
        {"domain": "acme.example", "direction": "inbound", "days": 400},
        {"domain": "partner.example", "days": 3650},
        {"domain": "short.example", "days": 30},
    ]}, "test")
    assert policy.rule_for("outbound", {"other.example"}) == Rule(2557)
    assert policy.rule_for("inbound", {"other.example"}) == Rule(1000, None, "inbound")
    assert policy.rule_for("outbound", {"acme.example"}) == Rule(3000, "acme.example")
    # Domain and direction beat domain alone, even when shorter.
    assert policy.rule_for("inbound", {"acme.example", "partner.example"}) == Rule(400, "acme.example", "inbound")
    # Two domain rules: the longer wins.
    assert policy.rule_for("outbound", {"short.example", "partner.example"}) == Rule(3650, "partner.example")
    assert policy.rule_for("outbound", {"short.example"}) == Rule(30, "short.example")
    assert Policy().rule_for("local", set()).days == 2557


@pytest.mark.parametrize(("data", "error"), [
    ({"default_days": 0}, "default_days: 0 is not a number of days"),
    ({"rules": [{"days": 10}]}, "rules[0]: a rule needs a domain or a direction"),
    ({"rules": [{"domain": "a b", "days": 10}]}, "rules[0]: domain 'a b' is not a domain name"),
    ({"rules": [{"direction": "up", "days": 10}]}, "rules[0]: direction 'up' is not one of"),
    ({"rules": [{"domain": "a.example", "days": 1}, {"domain": "A.example", "days": 2}]}, "rules[1]: a second rule"),
    ({"keep": 1}, "expected an object with default_days and rules"),
])
def test_bad_policies_are_one_line_errors(data: object, error: str) -> None:
    with pytest.raises(ArchiveError, match=error.replace("[", r"\[").replace("]", r"\]")):
        Policy.from_dict(data, "policy.json")


def aged(archive: Archive) -> dict[str, int]:
    """Messages received 10, 100 and 3000 days ago by various parties; record ids by name."""
    made = {
        "old_held": archive.ingest(message(body="old held", to="legal@partner.example"),
                                   envelope("H1", ["legal@partner.example"], received=days_ago(3000))),
        "old_free": archive.ingest(message(body="old free"), envelope("F1", received=days_ago(3000))),
        "old_free_2": archive.ingest(message(body="old free 2"), envelope("F2", received=days_ago(2600))),
        "recent": archive.ingest(message(body="recent"), envelope("R1", received=days_ago(100))),
        "short_domain": archive.ingest(message(body="short"), envelope("S1", ["x@short.example"],
                                                                        received=days_ago(100))),
    }
    return {name: record.id for name, record in made.items()}


def test_retention_deletes_expired_unheld_and_logs_each_deletion(tmp_path: Path) -> None:
    private, public = make_keys(tmp_path)
    policy = Policy.from_dict({"rules": [{"domain": "short.example", "days": 30}]}, "test")
    with make_archive(tmp_path) as archive:
        made = aged(archive)
        held = retention.hold(archive, "CASE-7", ["legal@partner.example"], date(2010, 1, 1), None,
                              "litigation hold", "counsel")
        plan = retention.retention_plan(archive, NOW, policy)
        assert sorted(e.record for e in plan) == sorted([made["old_free"], made["old_free_2"], made["short_domain"]])
        assert {e.rule for e in plan} == {"default: 2557 days", "domain short.example: 30 days"}
        done = retention.retention_apply(archive, NOW, policy, "records-officer")
        assert done == plan
        remaining = {r.id for r in search(archive, Criteria())}
        assert remaining == {made["old_held"], made["recent"]}
        deleted = [r for r in search(archive, Criteria(include_deleted=True)) if r.deleted_seq]
        assert len(deleted) == 3
        for record in deleted:
            assert not file_of(archive, record.sha256).exists()
            entry = next(log.entries(archive.connection(), record.deleted_seq, record.deleted_seq))
            assert entry.kind == "delete" and entry.object == record.sha256 and entry.record == record.id
            assert entry.details["operator"] == "records-officer" and entry.details["reason"] == "retention"
        # The deleted words are gone from the text index too.
        assert search(archive, Criteria(text="free", include_deleted=True)) == []
        assert file_of(archive, archive.record(made["old_held"]).sha256).exists()
        assert held.case_id in {h.case_id for h in retention.holds(archive)}
        log.checkpoint(archive, keys.load_signing_key(private), "test")
        report = verify(archive, keys.load_public_key(public))
        assert report.ok, report.problems
        assert report.counts["deleted"] == 3
        # Released, the held message goes on the next run.
        retention.release(archive, "CASE-7", "counsel", "case closed")
        assert [e.record for e in retention.retention_plan(archive, NOW, policy)] == [made["old_held"]]
        assert retention.holds(archive) == []
        assert retention.holds(archive, include_released=True)[0].released_seq is not None


def test_holds_by_domain_and_date_range(tmp_path: Path) -> None:
    with make_archive(tmp_path) as archive:
        made = aged(archive)
        retention.hold(archive, "by-domain", ["@partner.example"], None, None, "all partner mail", "counsel")
        assert retention.retention_plan(archive, NOW, Policy()) == []
        retention.release(archive, "by-domain", "counsel")
        day = days_ago(2600).date()
        retention.hold(archive, "one-day", [], day, day, "everything that day", "counsel")
        assert sorted(e.record for e in retention.retention_plan(archive, NOW, Policy())) == sorted(
            [made["old_held"], made["old_free"]])
        with pytest.raises(ArchiveError, match="already held"):
            retention.hold(archive, "one-day", [], None, None, "again", "counsel")
        with pytest.raises(ArchiveError, match="no active hold"):
            retention.release(archive, "unknown", "counsel")
        with pytest.raises(ArchiveError, match="give a reason"):
            retention.hold(archive, "x", [], None, None, " ", "counsel")
        with pytest.raises(ArchiveError, match="not an address"):
            retention.hold(archive, "x", ["nobody"], None, None, "r", "counsel")


def test_shared_content_stays_while_one_record_lives(tmp_path: Path) -> None:
    with make_archive(tmp_path) as archive:
        old = archive.ingest(message(), envelope("A1", received=days_ago(3000)))
        new = archive.ingest(message(), envelope("A2", received=days_ago(1)))
        retention.retention_apply(archive, NOW, Policy(), "test")
        assert archive.record(old.id).deleted_seq is not None
        assert archive.read_message(new.sha256) == message()
        assert [r.id for r in search(archive, Criteria(text="figures"))] == [new.id]


def test_tiering_moves_old_mail_to_packs_still_searchable_and_verifiable(tmp_path: Path) -> None:
    private, public = make_keys(tmp_path)
    with make_archive(tmp_path) as archive:
        old = [archive.ingest(message(body=f"old ledger {n}"), envelope(f"O{n}", received=days_ago(40 + n % 2)))
               for n in range(6)]
        recent = archive.ingest(message(body="recent ledger"), envelope("N1", received=days_ago(2)))
        assert sorted(len(v) for v in retention.tier_plan(archive, NOW, 30).values()) == [3, 3]
        results, damaged = retention.tier_apply(archive, NOW, 30, "ops")
        assert damaged == [] and sorted(r.members for r in results) == [3, 3]
        for record in old:
            assert archive.record(record.id).tier == "cold"
            assert not file_of(archive, record.sha256).exists()
            assert archive.read_message(record.sha256) == message(body=f"old ledger {old.index(record)}")
        assert archive.record(recent.id).tier == "hot"
        assert len(search(archive, Criteria(text="ledger"))) == 7
        tier_entries = list(log.entries(archive.connection(), kind="tier"))
        assert [e.details["operator"] for e in tier_entries] == ["ops", "ops"]
        assert {e.object for e in tier_entries} == {packs.file_sha256(archive.cold_root / r.pack) for r in results}
        log.checkpoint(archive, keys.load_signing_key(private), "test")
        report = verify(archive, keys.load_public_key(public))
        assert report.ok, report.problems
        assert report.counts["messages_checked"] == 7 and report.counts["packs"] == 2
        # The pack describes itself without the database.
        assert {m.sha256 for r in results for m in packs.read_index(archive.cold_root / r.pack)} == {
            r.sha256 for r in old}
        # A byte changed in a pack: the pack and each message in the damaged chunk are named.
        path = archive.cold_root / results[0].pack
        data = bytearray(path.read_bytes())
        data[len(packs.MAGIC) + 40] ^= 0xFF
        path.write_bytes(bytes(data))
        problems = [p.text for p in verify(archive, keys.load_public_key(public)).problems]
        assert problems[0] == f"pack {results[0].pack}: file changed (its SHA-256 differs from log entry " \
                              f"{results[0].seq})"
        assert len(problems) == 4 and all(f"(in pack {results[0].pack})" in p for p in problems[1:])


def test_retention_of_cold_messages_rewrites_their_pack(tmp_path: Path) -> None:
    private, public = make_keys(tmp_path)
    with make_archive(tmp_path) as archive:
        held = archive.ingest(message(body="keep me"), envelope("K1", ["legal@partner.example"],
                                                                received=days_ago(3000)))
        gone = archive.ingest(message(body="expire me"), envelope("E1", received=days_ago(3000)))
        retention.tier_apply(archive, NOW, 30, "ops")
        old_pack = archive.connection().execute("SELECT name FROM packs").fetchone()[0]
        retention.hold(archive, "C1", ["legal@partner.example"], None, None, "keep", "counsel")
        assert [e.record for e in retention.retention_apply(archive, NOW, Policy(), "ops")] == [gone.id]
        assert not (archive.cold_root / old_pack).exists()
        (new_pack,) = [row[0] for row in archive.connection().execute(
            "SELECT name FROM packs WHERE removed_seq IS NULL")]
        assert [m.sha256 for m in packs.read_index(archive.cold_root / new_pack)] == [held.sha256]
        assert archive.read_message(held.sha256) == message(body="keep me")
        repack = list(log.entries(archive.connection(), kind="repack"))
        assert [(e.details["replaces"], e.details["removed"]) for e in repack] == [(old_pack, 1)]
        log.checkpoint(archive, keys.load_signing_key(private), "test")
        report = verify(archive, keys.load_public_key(public))
        assert report.ok, report.problems


def test_policy_file_is_read_and_recorded_in_the_run_entry(tmp_path: Path) -> None:
    path = tmp_path / "retention.json"
    path.write_text(json.dumps({"default_days": 3650, "rules": [{"direction": "inbound", "days": 365}]}))
    policy = Policy.load(path)
    with make_archive(tmp_path) as archive:
        archive.ingest(message(), envelope("I1", direction="inbound", received=days_ago(400)))
        archive.ingest(message(body="out"), envelope("O1", direction="outbound", received=days_ago(400)))
        assert len(retention.retention_apply(archive, NOW, policy, "ops")) == 1
        (run,) = log.entries(archive.connection(), kind="retention")
        assert run.details["policy"] == policy.as_dict() and run.details["planned"] == 1


def test_a_case_held_again_after_release_is_active_and_its_history_kept(tmp_path: Path) -> None:
    with make_archive(tmp_path) as archive:
        retention.hold(archive, "C9", [], None, None, "first", "counsel")
        retention.release(archive, "C9", "counsel")
        again = retention.hold(archive, "C9", ["@acme.example"], None, None, "second", "counsel")
        assert retention.holds(archive) == [again]
        history = retention.holds(archive, include_released=True)
        assert [(h.reason, h.released_seq is not None) for h in history] == [("first", True), ("second", False)]


def test_tiering_leaves_a_damaged_file_hot_for_verify_to_name(tmp_path: Path) -> None:
    with make_archive(tmp_path) as archive:
        good = archive.ingest(message(body="good"), envelope("G1", received=days_ago(90)))
        bad = archive.ingest(message(body="bad"), envelope("B1", received=days_ago(90)))
        file_of(archive, bad.sha256).write_bytes(b"not gzip")
        results, damaged = retention.tier_apply(archive, NOW, 30, "ops")
        assert damaged == [bad.sha256] and [r.members for r in results] == [1]
        assert archive.record(good.id).tier == "cold" and archive.record(bad.id).tier == "hot"


def test_the_site_files_ordered_rules_first_match_wins() -> None:
    """The archive role writes the site file's retention: list as it is; the first rule that applies wins."""
    policy = Policy.from_dict({"rules": [
        {"domains": ["*.broker.example"], "direction": "", "days": 3650},
        {"domains": [], "direction": "inbound", "days": 400},
        {"domains": ["broker.example"], "direction": "", "days": 3000},
        {"domains": [], "direction": "", "days": 2000},
    ]}, "archive-retention.json")
    assert policy.default_days == 2000 and len(policy.rules) == 3
    assert policy.rule_for("inbound", {"desk.broker.example"}).days == 3650
    # broker.example itself is not below *.broker.example; inbound comes first in the list.
    assert policy.rule_for("inbound", {"broker.example"}).days == 400
    assert policy.rule_for("outbound", {"broker.example"}).days == 3000
    assert policy.rule_for("local", {"other.example"}).days == 2000
    with pytest.raises(ArchiveError, match=r"rules\[0\]: domains must be a list"):
        Policy.from_dict({"rules": [{"domains": ["a b"], "days": 1}]}, "x")
