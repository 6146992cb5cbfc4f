"""The archive controls on evidence from the real reader: `mailappliance-archive audit` (the verb
playbooks/audit.yml runs on the host) over a store in tmp_path, with the role's settings file, key and retention
policy, and a mail log in journalctl's short-iso format. Each breakage a store can suffer is seen by its
control; auditfixtures.archive() is held to the reader's output shape here."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import auditfixtures as fx
from mailappliance.archive import cli, keys, log, retention, timefmt
from mailappliance.archive.store import Archive
from mailappliance.audit.judge_archive import anchors_of, archive_expectations, judge_archive
from test_archive_support import envelope, file_of, make_keys, message, raw_db
from test_archive_verify import rewrite_chain

SITE = dict(fx.ARCHIVE_SITE)
QUEUE_IDS = ("4Ra1Bc2DeFz9xA1", "4Ra1Bc2DeGz9xA2", "4Ra1Bc2DeHz9xA3")


class Appliance:
    """A store as the archive role sets it up: settings file, public key, retention policy, spool."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.private, self.public = make_keys(root)
        self.policy = root / "archive-retention.json"
        self.policy.write_text(json.dumps({"rules": SITE["retention"]}))
        self.spool = root / "spool"
        self.spool.mkdir()
        self.config = root / "archive.json"
        self.write_config("defer")
        self.archive = Archive(root / "store", create=True)
        self.log_lines: list[str] = []
        now = timefmt.now()
        for number, queue_id in enumerate(QUEUE_IDS):
            at = now - timedelta(hours=2, minutes=number)
            self.archive.ingest(message(body=f"order {number}"), envelope(queue_id, received=at))
            self.accept(queue_id, at)
        log.checkpoint(self.archive, keys.load_signing_key(self.private), "test")

    def write_config(self, on_failure: str) -> None:
        self.config.write_text(json.dumps({
            "store": str(self.root / "store"), "cold_store": "", "on_failure": on_failure, "spool": str(self.spool),
            "hosted_domains": ["acme.example"], "public_key": str(self.public), "retention": str(self.policy)}))

    def accept(self, queue_id: str, at: Any) -> None:
        """The qmgr line by which reconcile knows Postfix accepted a message."""
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        self.log_lines.append(f"{stamp} mail postfix/qmgr[1990]: {queue_id}: from=<alice@acme.example>, size=300, "
                              "nrcpt=1 (queue active)")

    def read(self, capsys: pytest.CaptureFixture[str], anchors: Sequence[str] = ()) -> dict[str, Any]:
        mail_log = self.root / "mail.log"
        mail_log.write_text("\n".join(self.log_lines) + "\n")
        capsys.readouterr()
        # As playbooks/audit.yml writes them: --anchor=SEQ:HASH.
        assert cli.main(["audit", "--config", str(self.config), "--log", str(mail_log),
                         *[f"--anchor={anchor}" for anchor in anchors]]) == 0
        return json.loads(capsys.readouterr().out)

    def judge(self, capsys: pytest.CaptureFixture[str], units: list[str] | None = None,
              site: dict[str, Any] | None = None, anchors: Sequence[str] = ()) -> dict[str, Any]:
        evidence = {"archive": self.read(capsys, anchors),
                    "archive_units": fx.ARCHIVE_UNITS if units is None else units}
        return {c.id: c for c in judge_archive(evidence, SITE if site is None else site)}


@pytest.fixture
def appliance(tmp_path: Path) -> Appliance:
    return Appliance(tmp_path)


def test_a_healthy_archive_passes_every_control(appliance: Appliance, capsys: pytest.CaptureFixture[str]) -> None:
    seen = appliance.judge(capsys)
    assert {cid: c.status for cid, c in seen.items()} == dict.fromkeys(
        ("ARCHIVE-COVERAGE", "ARCHIVE-INTEGRITY", "ARCHIVE-RETENTION", "ARCHIVE-HOLDS", "ARCHIVE-SPACE"), "pass")
    assert "3 accepted, 3 archived, 0 missing, 0 archived twice" in seen["ARCHIVE-COVERAGE"].evidence
    assert "no legal hold in force" == seen["ARCHIVE-HOLDS"].evidence


def test_the_fixture_has_the_shape_of_the_reader(appliance: Appliance, capsys: pytest.CaptureFixture[str]) -> None:
    real, fixture = appliance.read(capsys), fx.archive()

    def shape(data: Any) -> Any:
        return {key: shape(value) for key, value in data.items()} if isinstance(data, dict) else type(data).__name__

    for part in ("reconcile", "verify", "retention", "stats", "store"):
        assert set(shape(real[part])) == set(shape(fixture[part])), part
    assert set(real) == set(fixture)


def test_a_message_accepted_but_not_archived_fails_coverage(appliance: Appliance,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    appliance.accept("4Ra1Bc2DeJz9xA9", timefmt.now() - timedelta(hours=1))
    control = appliance.judge(capsys)["ARCHIVE-COVERAGE"]
    assert control.status == "fail"
    assert "missing postfix/4Ra1Bc2DeJz9xA9" in control.evidence


def test_accepting_into_the_spool_warns_and_a_stale_spool_fails(appliance: Appliance,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    appliance.write_config("queue")
    assert appliance.judge(capsys)["ARCHIVE-COVERAGE"].status == "warn"
    waiting = appliance.spool / "4Ra1Bc2DeKz9xB1.json"
    waiting.write_text("{}")
    two_hours_ago = time.time() - 7200
    os.utime(waiting, (two_hours_ago, two_hours_ago))
    control = appliance.judge(capsys)["ARCHIVE-COVERAGE"]
    assert control.status == "fail" and "1 accepted messages wait in" in control.evidence


def test_a_changed_byte_fails_integrity_naming_the_message(appliance: Appliance,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    sha = appliance.archive.connection().execute("SELECT sha256 FROM messages ORDER BY id LIMIT 1").fetchone()[0]
    path = file_of(appliance.archive, sha)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    control = appliance.judge(capsys)["ARCHIVE-INTEGRITY"]
    assert control.status == "fail"
    assert sha[:12] in control.evidence


def test_entries_after_a_stale_checkpoint_warn(appliance: Appliance, capsys: pytest.CaptureFixture[str]) -> None:
    appliance.archive.ingest(message(body="after the checkpoint"), envelope("4Ra1Bc2DeLz9xB2"))
    assert appliance.judge(capsys)["ARCHIVE-INTEGRITY"].status == "pass"
    stale = {**SITE, "checkpoint_minutes": 0}
    control = appliance.judge(capsys, site=stale)["ARCHIVE-INTEGRITY"]
    assert control.status == "warn" and "1 entries came after it" in control.evidence


def test_a_policy_other_than_the_sites_or_a_stopped_timer_fails_retention(
        appliance: Appliance, capsys: pytest.CaptureFixture[str]) -> None:
    appliance.policy.write_text(json.dumps({"rules": [{"days": 365, "direction": "", "domains": []}]}))
    control = appliance.judge(capsys)["ARCHIVE-RETENTION"]
    assert control.status == "fail" and "everything else 365 days" in control.evidence
    appliance.policy.write_text(json.dumps({"rules": SITE["retention"]}))
    units = [line.replace("ActiveState=active", "ActiveState=inactive") for line in fx.ARCHIVE_UNITS]
    control = appliance.judge(capsys, units=units)["ARCHIVE-RETENTION"]
    assert control.status == "fail" and "mailappliance-archive-daily.timer is inactive" in control.evidence


def test_mail_overdue_for_deletion_warns(appliance: Appliance, capsys: pytest.CaptureFixture[str]) -> None:
    old = timefmt.now() - timedelta(days=40)
    appliance.archive.ingest(message(body="long ago"), envelope("4Ra1Bc2DeMz9xB3", received=old))
    short = [{"days": 30, "direction": "", "domains": []}]
    appliance.policy.write_text(json.dumps({"rules": short}))
    control = appliance.judge(capsys, site={**SITE, "retention": short})["ARCHIVE-RETENTION"]
    assert control.status == "warn" and "1 records are due for deletion" in control.evidence
    # The daily run deletes it; then nothing is due.
    retention.retention_apply(appliance.archive, timefmt.now(), retention.Policy.load(appliance.policy), "test")
    assert appliance.judge(capsys, site={**SITE, "retention": short})["ARCHIVE-RETENTION"].status == "pass"


def test_holds_are_listed(appliance: Appliance, capsys: pytest.CaptureFixture[str]) -> None:
    retention.hold(appliance.archive, "CASE-2026-17", ["@partner.example"], None, None, "litigation", "counsel")
    control = appliance.judge(capsys)["ARCHIVE-HOLDS"]
    assert control.status == "pass"
    assert "CASE-2026-17: 1 addresses, any time to any time; litigation (placed by counsel" in control.evidence
    assert "partner.example" not in control.evidence


@pytest.mark.parametrize("free, status", [(0.5, "pass"), (0.1, "warn"), (0.01, "fail")])
def test_free_space_thresholds(free: float, status: str) -> None:
    evidence = fx.archive()
    evidence["store"]["free"] = int(evidence["store"]["total"] * free)
    control = judge_archive({"archive": evidence, "archive_units": fx.ARCHIVE_UNITS}, SITE)[-1]
    assert (control.id, control.status) == ("ARCHIVE-SPACE", status)


def test_without_an_archive_section_nothing_applies_and_a_failed_reader_is_an_error() -> None:
    assert {c.status for c in judge_archive({"archive": fx.archive()}, None)} == {"not-applicable"}
    failed = {"archive": {"error": "the archive reader failed (exit 2): archive: error: no such store"}}
    controls = judge_archive(failed, SITE)
    assert {c.status for c in controls} == {"error"} and "no such store" in controls[0].evidence
    assert archive_expectations({"mailappliance__archive_enabled": False}) is None
    assert archive_expectations({"mailappliance__archive_enabled": True, "mailappliance__archive_retention": [
        {"days": 10, "direction": "", "domains": []}]})["retention"][0]["days"] == 10


def test_a_report_names_its_anchor_and_the_next_audit_holds_the_log_to_it(
        appliance: Appliance, capsys: pytest.CaptureFixture[str]) -> None:
    control = appliance.judge(capsys)["ARCHIVE-INTEGRITY"]
    [anchor] = anchors_of({"controls": [control.to_dict()]})
    assert f"anchor {anchor} (a later" in control.evidence
    # The next audit passes it on: the same log holds to it.
    held = appliance.judge(capsys, anchors=[anchor])["ARCHIVE-INTEGRITY"]
    assert held.status == "pass" and "1 anchors" in held.evidence
    # Root on the host rewrites an entry and signs the log again with the site's key: only the anchor tells.
    seq = int(anchor.split(":")[0])
    rewrite_chain(appliance.archive, 1, {"sender": "innocent@acme.example"})
    conn = raw_db(appliance.archive)
    conn.execute("DELETE FROM log WHERE seq >= ?", (seq,))
    log.checkpoint(Archive(appliance.archive.root), keys.load_signing_key(appliance.private), "root")
    assert appliance.judge(capsys)["ARCHIVE-INTEGRITY"].status == "pass"
    control = appliance.judge(capsys, anchors=[anchor])["ARCHIVE-INTEGRITY"]
    assert control.status == "fail" and f"log entry {seq} has hash " in control.evidence


def test_only_well_formed_anchors_are_taken_from_a_report() -> None:
    good = "7:" + "ab" * 32

    def report(evidence: str, control: str = "ARCHIVE-INTEGRITY") -> dict[str, Any]:
        return {"controls": [{"id": control, "evidence": evidence}]}

    assert anchors_of(report(f"pass: last checkpoint: anchor {good} (a later ...)")) == (good,)
    assert anchors_of(report(f"anchor {good}; rm -rf /")) == (good,)
    assert anchors_of(report(f"anchor {good}x")) == ()
    assert anchors_of(report("anchor 7:abc")) == ()
    assert anchors_of(report(f"anchor {good}", control="ARCHIVE-HOLDS")) == ()
    assert anchors_of(None) == () and anchors_of({"controls": "junk"}) == ()
