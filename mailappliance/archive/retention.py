"""Retention: what is deleted when. Legal holds (holds.py) say what must not be; tiers (tiers.py) what moves
to the cold store; both are re-exported here, the module the CLI and the role use.

Retention policy (a JSON file the archive role writes from the site file):
    {"default_days": 2557, "rules": [{"domain": "acme.example", "direction": "inbound", "days": 3650}, ...]}
A rule applies to a message when its domain (if given) is the domain of the envelope sender or of any
envelope recipient, and its direction (if given) is the message's. Of the rules that apply, the most specific
wins: domain and direction, then domain alone, then direction alone, then the default (7 years = 2557 days).
When several rules of the same rank apply (a message between two domains that both have one), the longest
retention wins: keeping too long can be undone later, deleting too early cannot.
A message expires `days` days after it was received, and is deleted then unless a legal hold covers it.

The site file's form, which the archive role writes, is an ordered list where the first rule that applies wins:
    {"rules": [{"domains": ["broker.example", "*.broker.example"], "direction": "outbound", "days": 3650},
               {"domains": [], "direction": "", "days": 2557}]}
"" and [] mean any; a domain entry is a name or "*." and a suffix (every name below it); a last rule with
neither is the default.

Deleting never drops the record: it is marked deleted and a `delete` entry says by which rule, in which run
(a `retention` entry holding the policy) and by whom. Its words leave the text index, its file goes once no
live record shares it, and a pack holding it is rewritten without it. Deletion removes a hot file only under
the database write lock, after checking again that no new ingest of the same content revived it.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from . import db, log, parse, timefmt
from .errors import ArchiveError
from .holds import Hold, hold, holds, holds_in, release
from .store import DIRECTIONS, Archive
from .tiers import TierResult, maintenance_lock, remove_dead_files, repack_dead, tier_apply, tier_plan

# Holds and tiers are part of this module's interface, as the CLI and the role see it.
__all__ = ["DEFAULT_DAYS", "Expiry", "Hold", "Policy", "Rule", "TierResult", "hold", "holds", "release",
           "retention_apply", "retention_plan", "tier_apply", "tier_plan"]

DEFAULT_DAYS = 2557
BATCH = 500


def domain_matches(pattern: str, domain: str) -> bool:
    """A name matches itself; "*.suffix" every name below suffix (not suffix itself), as the site's routes."""
    if pattern.startswith("*."):
        return domain.endswith(pattern[1:])
    return domain == pattern


@dataclass(frozen=True)
class Rule:
    days: int
    domain: str | None = None
    direction: str | None = None
    # The site file's form: any of these names or wildcards (empty: not used).
    patterns: tuple[str, ...] = ()

    @property
    def rank(self) -> int:
        return (2 if self.domain else 0) + (1 if self.direction else 0)

    def applies(self, direction: str, domains: set[str]) -> bool:
        if self.patterns and not any(domain_matches(p, d) for p in self.patterns for d in domains):
            return False
        return (self.domain is None or self.domain in domains) and (self.direction in (None, direction))

    def describe(self) -> str:
        parts = [f"domain {self.domain}" if self.domain else "",
                 f"domains {', '.join(self.patterns)}" if self.patterns else "",
                 f"direction {self.direction}" if self.direction else ""]
        scope = " and ".join(p for p in parts if p) or "default"
        return f"{scope}: {self.days} days"


@dataclass(frozen=True)
class Policy:
    default_days: int = DEFAULT_DAYS
    rules: tuple[Rule, ...] = ()
    # The site file's ordered form: the first rule that applies wins.
    first_match: bool = False

    def rule_for(self, direction: str, domains: set[str]) -> Rule:
        applying = [rule for rule in self.rules if rule.applies(direction, domains)]
        if not applying:
            return Rule(self.default_days)
        if self.first_match:
            return applying[0]
        best = max(rule.rank for rule in applying)
        return max((rule for rule in applying if rule.rank == best), key=lambda rule: rule.days)

    def shortest(self) -> int:
        return min([self.default_days, *(rule.days for rule in self.rules)])

    def as_dict(self) -> dict[str, Any]:
        return {"default_days": self.default_days, "first_match": self.first_match,
                "rules": [{k: v for k, v in asdict(rule).items() if v not in (None, ())} for rule in self.rules]}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Policy:
        if isinstance(data, dict) and any(isinstance(r, dict) and "domains" in r for r in data.get("rules") or []):
            return cls._ordered(data, where)
        if not isinstance(data, dict) or set(data) - {"default_days", "rules"}:
            raise ArchiveError(f"{where}: expected an object with default_days and rules")
        default = _days(data.get("default_days", DEFAULT_DAYS), f"{where}: default_days")
        rules = []
        seen = set()
        for number, item in enumerate(data.get("rules", [])):
            at = f"{where}: rules[{number}]"
            if not isinstance(item, dict) or set(item) - {"domain", "direction", "days"} or "days" not in item:
                raise ArchiveError(f"{at}: expected an object with days and domain and/or direction")
            domain = item.get("domain")
            if domain is not None and (not isinstance(domain, str) or not re.fullmatch(r"[a-z0-9.-]{1,253}",
                                                                                         domain.lower())):
                raise ArchiveError(f"{at}: domain {domain!r} is not a domain name")
            direction = item.get("direction")
            if direction is not None and direction not in DIRECTIONS:
                raise ArchiveError(f"{at}: direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
            if domain is None and direction is None:
                raise ArchiveError(f"{at}: a rule needs a domain or a direction; set default_days for all mail")
            rule = Rule(_days(item["days"], f"{at}: days"), domain.lower() if domain else None, direction)
            if (rule.domain, rule.direction) in seen:
                raise ArchiveError(f"{at}: a second rule for {rule.describe().split(':')[0]}; keep one")
            seen.add((rule.domain, rule.direction))
            rules.append(rule)
        return cls(default, tuple(rules))

    @classmethod
    def _ordered(cls, data: dict[str, Any], where: str) -> Policy:
        """The site file's ordered rules (see the module's docstring); a last catch-all sets the default."""
        if set(data) - {"rules"}:
            raise ArchiveError(f"{where}: expected an object with rules only")
        rules = []
        for number, item in enumerate(data["rules"]):
            at = f"{where}: rules[{number}]"
            if not isinstance(item, dict) or set(item) - {"domains", "direction", "days"} or "days" not in item:
                raise ArchiveError(f"{at}: expected an object with days, direction and domains")
            patterns = item.get("domains") or []
            if not isinstance(patterns, list) or not all(
                    isinstance(p, str) and re.fullmatch(r"(\*\.)?[a-z0-9.-]{1,253}", p.lower()) for p in patterns):
                raise ArchiveError(f"{at}: domains must be a list of names or *.wildcards")
            direction = item.get("direction") or None
            if direction is not None and direction not in DIRECTIONS:
                raise ArchiveError(f"{at}: direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
            rules.append(Rule(_days(item["days"], f"{at}: days"), None, direction,
                              tuple(p.lower() for p in patterns)))
        default = DEFAULT_DAYS
        if rules and not rules[-1].patterns and rules[-1].direction is None:
            default = rules.pop().days
        return cls(default, tuple(rules), first_match=True)

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ArchiveError(f"retention policy {path}: cannot be read ({error.strerror}); check the path") from None
        except ValueError as error:
            raise ArchiveError(f"retention policy {path}: not JSON ({error}); fix the file") from None
        return cls.from_dict(data, f"retention policy {path}")


def _days(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100 * 366:
        raise ArchiveError(f"{where}: {value!r} is not a number of days from 1 to 36600")
    return value


@dataclass(frozen=True)
class Expiry:
    record: int
    sha256: str
    instance: str
    queue_id: str
    received: str
    expired: str
    rule: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _candidates(conn: sqlite3.Connection, before: str) -> Iterator[tuple[sqlite3.Row, dict[str, set[str]]]]:
    """Live records received before `before`, with their addresses by role."""
    addresses: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for row in conn.execute("SELECT a.message, a.role, a.address FROM addresses a JOIN messages m ON m.id = "
                            "a.message WHERE m.deleted_seq IS NULL AND m.received < ?", (before,)):
        addresses[row["message"]][row["role"]].add(row["address"])
    for row in conn.execute("SELECT id, sha256, instance, queue_id, received, direction FROM messages "
                            "WHERE deleted_seq IS NULL AND received < ? ORDER BY received, id", (before,)):
        yield row, addresses.get(row["id"], {})


def _plan(conn: sqlite3.Connection, now: datetime, policy: Policy) -> list[Expiry]:
    active = holds_in(conn)
    before = timefmt.format_time(now - timedelta(days=policy.shortest()))
    plan = []
    for row, roles in _candidates(conn, before):
        envelope = roles.get("sender", set()) | roles.get("rcpt", set())
        rule = policy.rule_for(row["direction"], {parse.envelope_domain(a) for a in envelope} - {""})
        expired = timefmt.parse_stored(row["received"]) + timedelta(days=rule.days)
        if expired > now:
            continue
        everyone = set().union(*roles.values()) if roles else set()
        if any(h.covers(row["received"], everyone) for h in active):
            continue
        plan.append(Expiry(row["id"], row["sha256"], row["instance"], row["queue_id"], row["received"],
                           timefmt.format_time(expired), rule.describe()))
    return plan


def retention_plan(archive: Archive, now: datetime, policy: Policy) -> list[Expiry]:
    """The records retention_apply would delete at `now`: expired under the policy and not held."""
    return _plan(archive.connection(), now, policy)


def retention_apply(archive: Archive, now: datetime, policy: Policy, operator: str) -> list[Expiry]:
    """Delete what retention_plan lists: a `retention` entry for the run, a `delete` entry per record, the
    record marked deleted (kept, so verify and reconcile can explain it), its words dropped from the text
    index, and its file removed once no live record shares it (packs are rewritten without it)."""
    conn = archive.connection()
    done: list[Expiry] = []
    with maintenance_lock(archive):
        plan = _plan(conn, now, policy)
        with db.transaction(conn):
            run = log.append(conn, "retention", details={"policy": policy.as_dict(), "now": timefmt.format_time(now),
                                                         "planned": len(plan), "operator": operator})
        for start in range(0, len(plan), BATCH):
            done.extend(_delete_batch(archive, plan[start:start + BATCH], run.seq, operator))
        remove_dead_files(archive)
        repack_dead(archive, operator)
    return done


def _delete_batch(archive: Archive, batch: list[Expiry], run_seq: int, operator: str) -> list[Expiry]:
    conn = archive.connection()
    done = []
    with db.transaction(conn):
        # A hold placed while the run goes on still counts: read them again under the write lock.
        active = holds_in(conn)
        for expiry in batch:
            row = conn.execute("SELECT deleted_seq FROM messages WHERE id = ?", (expiry.record,)).fetchone()
            everyone = {r["address"] for r in conn.execute("SELECT address FROM addresses WHERE message = ?",
                                                           (expiry.record,))}
            if row is None or row["deleted_seq"] is not None or any(h.covers(expiry.received, everyone)
                                                                     for h in active):
                continue
            _drop_words(archive, conn, expiry)
            entry = log.append(conn, "delete", expiry.sha256, expiry.record, {
                "reason": "retention", "rule": expiry.rule, "expired": expiry.expired, "run": run_seq,
                "operator": operator})
            conn.execute("UPDATE messages SET deleted_seq = ? WHERE id = ?", (entry.seq, expiry.record))
            alive = conn.execute("SELECT 1 FROM messages WHERE sha256 = ? AND deleted_seq IS NULL LIMIT 1",
                                 (expiry.sha256,)).fetchone()
            if alive is None:
                conn.execute("UPDATE objects SET location = 'deleted' WHERE sha256 = ? AND location = 'hot'",
                             (expiry.sha256,))
            done.append(expiry)
    return done


def _drop_words(archive: Archive, conn: sqlite3.Connection, expiry: Expiry) -> None:
    """Remove the record's words from the contentless text index, which needs the same values it was given:
    the message is parsed again. A message that cannot be read keeps its words; search never shows deleted
    records."""
    try:
        parsed = parse.parse(archive.read_message(expiry.sha256))
    except (OSError, ValueError, ArchiveError):
        return
    conn.execute("INSERT INTO text (text, rowid, subject, headers, body, attachments) "
                 "VALUES ('delete', ?, ?, ?, ?, ?)",
                 (expiry.record, parsed.subject, parsed.headers, parsed.body, parsed.attachments))
