"""Judge the archive's evidence (playbooks/audit.yml runs `mailappliance-archive audit` on the host) against the
site file's archive: section: coverage, integrity, retention, legal holds and free space."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from mailappliance.archive import timefmt
from mailappliance.archive.errors import ArchiveError
from mailappliance.archive.retention import Policy
from mailappliance.controls import catalogue as cat
from mailappliance.controls.model import ERROR, FAIL, NOT_APPLICABLE, PASS, WARN, Control, worst

SPECS = (cat.ARCHIVE_COVERAGE, cat.ARCHIVE_INTEGRITY, cat.ARCHIVE_RETENTION, cat.ARCHIVE_HOLDS, cat.ARCHIVE_SPACE)
NO_ARCHIVE = "the site has no archive: section"
# Free space on a store, as a share of its file system: below these, warn and fail.
SPACE_WARN_SHARE = 0.20
SPACE_FAIL_SHARE = 0.05
# A message waiting in the spool (on_failure: queue) longer than this is mail accepted and still not archived.
SPOOL_FAIL_SECONDS = 3600
# Records due for deletion longer than this mean the daily run is not working.
RETENTION_LATE = timedelta(days=2)
# The units the role installs: the milter's socket, the daily upkeep and the checkpoint timers.
DAILY_TIMER = "mailappliance-archive-daily.timer"
UNITS = ("mailappliance-archive.socket", DAILY_TIMER, "mailappliance-archive-checkpoint.timer")


# How the ARCHIVE-INTEGRITY evidence names the last checkpoint; the only form passed on to the host.
ANCHOR = re.compile(r"\banchor ([1-9][0-9]{0,17}:[0-9a-f]{64})\b")


def anchors_of(report: dict[str, Any] | None) -> tuple[str, ...]:
    """The anchors (SEQ:HASH) a report's ARCHIVE-INTEGRITY evidence names: the next audit holds the log to
    them, so a log rewritten between two audits fails even when it was signed again with the site's key."""
    found: list[str] = []
    for control in (report or {}).get("controls") or []:
        if isinstance(control, dict) and control.get("id") == cat.ARCHIVE_INTEGRITY.id:
            found += ANCHOR.findall(str(control.get("evidence") or ""))
    return tuple(dict.fromkeys(found))


def archive_expectations(site_vars: dict[str, Any]) -> dict[str, Any] | None:
    """The `mailappliance__archive_*` variables the inventory writes, for the controls to hold the host to; None
    for a site without an archive: section."""
    if not site_vars.get("mailappliance__archive_enabled"):
        return None
    return {"on_failure": site_vars.get("mailappliance__archive_on_failure", "defer"),
            "retention": list(site_vars.get("mailappliance__archive_retention") or []),
            "checkpoint_minutes": int(site_vars.get("mailappliance__archive_checkpoint_minutes", 60))}


def _stamp(text: Any) -> datetime | None:
    """An archive time (timefmt's one format), or None for anything else."""
    try:
        return timefmt.parse_stored(str(text))
    except ValueError:
        return None


def _part(data: dict[str, Any], name: str) -> tuple[Any, str]:
    """A part of the reader's evidence, or the reason it is missing."""
    value = data.get(name)
    if value is None:
        return None, f"the archive reader gave no {name}"
    if isinstance(value, dict) and set(value) == {"error"}:
        return None, f"the archive's {name} could not be computed: {value['error']}"
    return value, ""


def units(lines: list[str]) -> dict[str, str]:
    """`systemctl show --property=Id,ActiveState UNIT...`: blocks of Id= and ActiveState= lines."""
    found: dict[str, str] = {}
    unit = ""
    for line in lines:
        key, _, value = line.partition("=")
        if key == "Id":
            unit = value
        elif key == "ActiveState" and unit:
            found[unit] = value
    return found


def judge_archive(evidence: dict[str, Any], site: dict[str, Any] | None) -> list[Control]:
    if site is None:
        return [spec.judge(NOT_APPLICABLE, NO_ARCHIVE) for spec in SPECS]
    data = evidence.get("archive")
    if not isinstance(data, dict) or data.get("error") or "time" not in data:
        reason = data.get("error") if isinstance(data, dict) and data.get("error") else "no archive evidence"
        return [spec.judge(ERROR, f"the archive could not be read on the host: {str(reason)[:300]}") for spec in SPECS]
    now = _stamp(data["time"]) or datetime.now(timezone.utc)
    states = units(evidence.get("archive_units") or [])
    return [coverage(data, now), integrity(data, site, now), retention(data, site, states, now), holds(data),
            space(data)]


def coverage(data: dict[str, Any], now: datetime) -> Control:
    found, reason = _part(data, "reconcile")
    if found is None:
        return cat.ARCHIVE_COVERAGE.judge(ERROR, reason)
    lines = []
    counts = (f"{found['accepted']} accepted, {found['archived']} archived, {found['missing_count']} missing, "
              f"{found['twice_count']} archived twice, {found['never_accepted_count']} archived but never accepted "
              f"({found['since']} to {found['until']}; {found['log_lines']} log lines read)")
    ok = not found["missing_count"] and not found["twice_count"]
    lines.append(f"{'pass' if ok else 'fail'}: {counts}")
    for missing in found.get("missing") or []:
        lines.append(f"fail: missing {missing['instance']}/{missing['queue_id']} accepted {missing['time']}"
                     + (f" ({missing['note']})" if missing.get("note") else ""))
    for twice in found.get("twice") or []:
        lines.append(f"fail: archived twice {twice['instance']}/{twice['queue_id']} records "
                     f"{', '.join(map(str, twice['records']))}")
    if found["missing_count"] + found["twice_count"] > len(lines) - 1:
        lines.append("fail: more not shown: `mailappliance-archive reconcile` lists every one")
    if data.get("on_failure") == "queue":
        lines.append("warn: archive: on_failure: queue: while the store cannot take mail, the appliance accepts "
                     "it unarchived and keeps it in the spool")
        spool = data.get("spool") or {}
        if spool.get("error"):
            lines.append(f"error: the spool {spool.get('path')} could not be read: {spool['error']}")
        elif spool.get("messages"):
            age = now.timestamp() - float(spool.get("oldest_mtime") or now.timestamp())
            status = "fail" if age > SPOOL_FAIL_SECONDS else "warn"
            lines.append(f"{status}: {spool['messages']} accepted messages wait in {spool['path']} for the store, "
                         f"the oldest for {int(age // 60)} min")
    return cat.ARCHIVE_COVERAGE.judge(_status(lines), "\n".join(lines))


def integrity(data: dict[str, Any], site: dict[str, Any], now: datetime) -> Control:
    found, reason = _part(data, "verify")
    if found is None:
        return cat.ARCHIVE_INTEGRITY.judge(ERROR, reason)
    counts = ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in sorted(found["counts"].items()))
    lines = [f"{'pass' if found['ok'] else 'fail'}: verify: {counts}; {found['problem_count']} problems"]
    lines += [f"fail: {problem}" for problem in found.get("problems") or []]
    if found["problem_count"] > len(found.get("problems") or []):
        lines.append("fail: more not shown: `mailappliance-archive verify` names every one")
    stats, _ = _part(data, "stats")
    last = (stats or {}).get("last_checkpoint") or {}
    since = (stats or {}).get("entries_since_checkpoint") or 0
    signed = _stamp(last.get("time"))
    late = timedelta(minutes=2 * site["checkpoint_minutes"])
    if since and (signed is None or now - signed > late):
        when = f"at {last.get('time')}" if signed else "never"
        lines.append(f"warn: the log was last checkpointed {when}, and {since} entries came after it")
    if last.get("hash"):
        # The report is kept off the host: this line lets a later verify prove the log was not rewritten since.
        lines.append(f"pass: last checkpoint: log entry {last['seq']} at {last['time']}, anchor "
                     f"{last['seq']}:{last['hash']} (a later `mailappliance-archive verify --anchor` with it proves "
                     "the log up to here was not rewritten, even by someone holding the signing key)")
    return cat.ARCHIVE_INTEGRITY.judge(_status(lines), "\n".join(lines))


def retention(data: dict[str, Any], site: dict[str, Any], states: dict[str, str], now: datetime) -> Control:
    found, reason = _part(data, "retention")
    if found is None:
        return cat.ARCHIVE_RETENTION.judge(ERROR, reason)
    lines = []
    try:
        wanted = Policy.from_dict({"rules": site["retention"]}, "the site's archive.retention").as_dict()
    except ArchiveError as error:
        wanted = {"error": str(error)}
    rules = "; ".join(_rule(rule) for rule in found["policy"].get("rules") or [])
    shown = f"{rules + '; ' if rules else ''}everything else {found['policy'].get('default_days')} days"
    if found["policy"] == wanted:
        lines.append(f"pass: {found['file'] or 'the default policy'}: {shown}")
    else:
        lines.append(f"fail: {found['file'] or 'the default policy'} ({shown}) is not the site's archive.retention")
    state = states.get(DAILY_TIMER, "unknown")
    lines.append(f"{'pass' if state == 'active' else 'fail'}: {DAILY_TIMER} is {state}")
    oldest = _stamp(found.get("oldest_expiry"))
    if found["due"] and oldest is not None and now - oldest > RETENTION_LATE:
        lines.append(f"warn: {found['due']} records are due for deletion, the first since {found['oldest_expiry']}")
    elif found["due"]:
        lines.append(f"pass: {found['due']} records due for deletion at the next daily run")
    return cat.ARCHIVE_RETENTION.judge(_status(lines), "\n".join(lines))


def _rule(rule: dict[str, Any]) -> str:
    scope = [", ".join(rule.get("patterns") or []), rule.get("direction") or ""]
    return f"{' '.join(part for part in scope if part) or 'all'} {rule['days']} days"


def holds(data: dict[str, Any]) -> Control:
    found, reason = _part(data, "holds")
    if found is None:
        return cat.ARCHIVE_HOLDS.judge(FAIL, reason)
    if not found:
        return cat.ARCHIVE_HOLDS.judge(PASS, "no legal hold in force")
    lines = [f"{hold['case_id']}: {hold['addresses'] or 'all'} addresses, {hold['date_from'] or 'any time'} to "
             f"{hold['date_to'] or 'any time'}; {hold['reason']} (placed by {hold['operator']} at {hold['time']})"
             for hold in found]
    return cat.ARCHIVE_HOLDS.judge(PASS, f"{len(found)} holds in force:\n" + "\n".join(lines))


def space(data: dict[str, Any]) -> Control:
    lines = []
    for name in ("store", "cold"):
        disk = data.get(name)
        if disk is None:
            continue
        if disk.get("error") or not disk.get("total"):
            lines.append(f"error: the {name} store {disk.get('path')} could not be measured: {disk.get('error')}")
            continue
        share = disk["free"] / disk["total"]
        status = FAIL if share < SPACE_FAIL_SHARE else WARN if share < SPACE_WARN_SHARE else PASS
        lines.append(f"{status}: {name} store {disk['path']}: {disk['free'] / 2**30:.2f} GiB free of "
                     f"{disk['total'] / 2**30:.2f} GiB ({share:.0%})")
    if not lines:
        return cat.ARCHIVE_SPACE.judge(ERROR, "the archive reader measured no store")
    return cat.ARCHIVE_SPACE.judge(_status(lines), "\n".join(lines))


def _status(lines: list[str]) -> str:
    return worst([line.split(":", 1)[0] for line in lines])
