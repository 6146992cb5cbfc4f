"""The archive's command line on the host: `python3 -m mailappliance.archive VERB ...`.

Read-only unless a verb says otherwise; hold, release, retention --apply, tier and checkpoint are changes and
each is a log entry naming who ran it (--operator, default the Unix user). Output is text for people, or JSON
with --json. A problem the user can fix is one line on stderr and exit code 2, never a traceback; verify and
reconcile exit 1 when they find something wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sqlite3
import sys
import unicodedata
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from . import keys, log, retention, timefmt
from .errors import ArchiveError
from .export import export
from .reconcile import reconcile
from .search import Criteria, search
from .store import DIRECTIONS, Archive, Envelope, Record, stats
from .verify import verify

EXIT_OK, EXIT_FOUND, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_STORE = "/var/lib/mailappliance/archive"
STORE_VARIABLE = "MAILAPPLIANCE_ARCHIVE_STORE"


def printable(value: Any) -> str:
    r"""A value as one safe line: control, format and separator characters written as \uXXXX."""
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") else c
                   for c in str(value))


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ArchiveError(f"{self.prog}: {message}; see --help")


def operator_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--store", type=Path, default=Path(os.environ.get(STORE_VARIABLE, DEFAULT_STORE)),
                        help=f"the archive store folder (default ${STORE_VARIABLE} or {DEFAULT_STORE})")
    common.add_argument("--cold", type=Path, help="the cold store folder (default: the one last used)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    common.add_argument("--operator", default=operator_name(), help="who runs this, for the log (default: you)")
    parser = Parser(prog="archive", description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=Parser)

    def verb(name: str, text: str) -> Parser:
        return verbs.add_parser(name, parents=[common], help=text, description=text)

    verb("init", "create an empty archive in the store folder")
    p = verb("ingest", "archive one message read from standard input (for tests and tools; the milter calls "
                       "the library)")
    p.add_argument("--queue-id", default="")
    p.add_argument("--instance", default="postfix")
    p.add_argument("--sender", required=True, help="envelope sender ('' for the null sender)")
    p.add_argument("--recipient", action="append", required=True, help="envelope recipient (repeat)")
    p.add_argument("--direction", required=True, choices=DIRECTIONS)
    p.add_argument("--channel", default="staff")
    p.add_argument("--account", default="")
    p.add_argument("--client-address", default="")
    p.add_argument("--received", help="UTC time received (default now)")
    for name, text in (("search", "find messages"), ("export", "export messages with their proof")):
        p = verb(name, text)
        p.add_argument("--sender", help="user@domain or @domain: envelope sender or From")
        p.add_argument("--recipient", help="user@domain or @domain: envelope recipient (Bcc too), To or Cc")
        p.add_argument("--since", help="received on or after (YYYY-MM-DD or a UTC time)")
        p.add_argument("--until", help="received before (a date counts whole)")
        p.add_argument("--subject", help="words of the subject")
        p.add_argument("--text", help="words anywhere in headers, bodies or attachment names")
        p.add_argument("--fts", action="store_true", help="--text is an FTS5 query (AND, OR, NOT, NEAR, prefix*)")
        p.add_argument("--direction", choices=DIRECTIONS)
        p.add_argument("--channel")
        p.add_argument("--account")
        p.add_argument("--include-deleted", action="store_true", help="also records deleted by retention")
        if name == "search":
            p.add_argument("--limit", type=int, default=100, help="at most this many (default 100; 0: all)")
        else:
            p.add_argument("--out", type=Path, required=True, help="a new folder to write")
            p.add_argument("--mbox", action="store_true", help="one mbox file instead of EML files")
            p.add_argument("--public-key", type=Path, required=True, help="the site's archive public key")
            p.add_argument("--checkpoint-key", type=Path, help="sign a checkpoint first with this private key")
    p = verb("verify", "check the log, the checkpoints and every stored message")
    p.add_argument("--public-key", type=Path, required=True, help="the site's archive public key (from the vault)")
    p.add_argument("--anchor", action="append", default=[], metavar="SEQ:HASH",
                   help="a log entry's hash recorded earlier off the host, e.g. the last checkpoint an audit report "
                        "shows (repeat)")
    p = verb("reconcile", "compare the mail log's accepted messages with the archive")
    p.add_argument("--log", required=True, help="journalctl output of the Postfix units ('-': standard input)")
    p.add_argument("--since", required=True)
    p.add_argument("--until", required=True)
    p = verb("hold", "place a legal hold")
    p.add_argument("case_id")
    p.add_argument("--address", action="append", default=[], help="user@domain or @domain (repeat; none: all)")
    p.add_argument("--from", dest="date_from", help="first day held (YYYY-MM-DD)")
    p.add_argument("--to", dest="date_to", help="last day held (YYYY-MM-DD)")
    p.add_argument("--reason", required=True)
    p = verb("release", "release a legal hold")
    p.add_argument("case_id")
    p.add_argument("--reason", default="")
    p = verb("holds", "list legal holds")
    p.add_argument("--all", action="store_true", help="released ones too")
    p = verb("retention", "list what retention would delete now; --apply deletes it")
    p.add_argument("--policy", type=Path, help="retention policy JSON (default: <store>/retention.json, else "
                                               "7 years for everything)")
    p.add_argument("--apply", action="store_true")
    p.add_argument("--at", help="judge as of this UTC time instead of now")
    p = verb("tier", "move messages older than --after-days to cold packs")
    p.add_argument("--after-days", type=int, required=True)
    p.add_argument("--dry-run", action="store_true", help="only list what would move")
    p = verb("checkpoint", "sign the log's head with the site's key")
    p.add_argument("--key", type=Path, required=True, help="the private key file (0600)")
    p.add_argument("--if-changed", action="store_true",
                   help="only if entries came after the last checkpoint (what the deploy runs)")
    p = verbs.add_parser("milter", help="serve the journaling milter (what the systemd unit runs)",
                         description="serve the journaling milter (what the systemd unit runs)")
    p.add_argument("--config", type=Path, required=True, help="the milter's settings (JSON the role writes)")
    p.add_argument("--listen", action="append", default=[],
                   help="host:port to serve, besides the sockets systemd passes")
    verb("stats", "counts, sizes and free space")
    p = verbs.add_parser("audit", help="what `mailappliance audit` reads (JSON): verify, reconcile, holds, "
                                       "retention due, space, spool", description="what `mailappliance audit` "
                         "reads (JSON): verify, reconcile, holds, retention due, space, spool")
    p.add_argument("--config", type=Path, required=True, help="the milter's settings (JSON the role writes)")
    p.add_argument("--log", required=True, help="journalctl output of the Postfix units ('-': standard input)")
    p.add_argument("--hours", type=float, default=24.0, help="reconcile the last HOURS (default 24)")
    p.add_argument("--anchor", action="append", default=[], metavar="SEQ:HASH",
                   help="hold the log to a hash the previous audit report recorded (repeat)")
    p = verb("public-key", "print the public key of a private key file")
    p.add_argument("--key", type=Path, required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return run(args)
    except ArchiveError as error:
        print(f"archive: error: {printable(error)}", file=sys.stderr)
        return EXIT_ERROR
    except sqlite3.DatabaseError as error:
        print(f"archive: error: the archive database failed ({printable(error)}); check the store's disk, then run "
              "verify", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:
        print(f"archive: error: {printable(error.filename or '')}: {printable(error.strerror or error)}; check the "
              "path and its permissions", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def emit(args: argparse.Namespace, data: Any, lines: list[str]) -> None:
    if args.json:
        print(json.dumps(data, indent=1, sort_keys=True, ensure_ascii=True))
    else:
        for line in lines:
            print(printable(line))


def criteria_of(args: argparse.Namespace) -> Criteria:
    return Criteria(
        sender=args.sender, recipient=args.recipient, subject=args.subject, text=args.text, fts=args.fts,
        since=timefmt.parse_user_time(args.since, "--since") if args.since else None,
        until=timefmt.parse_user_time(args.until, "--until", end_of_day=True) if args.until else None,
        direction=args.direction, channel=args.channel, account=args.account, include_deleted=args.include_deleted,
        limit=(args.limit or None) if hasattr(args, "limit") else None)


def hit_line(record: Record) -> str:
    recipients = ", ".join(record.recipients)
    deleted = " DELETED" if record.deleted_seq else ""
    return (f"{record.id} {record.received} {record.sender or '<>'} -> {recipients} | {record.subject} | "
            f"{record.size} B {record.direction}/{record.channel} {record.sha256}{deleted}")


def day(text: str | None, what: str) -> date | None:
    return timefmt.parse_user_time(text, what).date() if text else None


def run(args: argparse.Namespace) -> int:
    if args.verb == "milter":
        from . import service

        return service.main(args.config, args.listen)
    if args.verb == "audit":
        return do_audit(args)
    if args.verb == "public-key":
        public = keys.load_signing_key(args.key).public_key()
        emit(args, {"key_id": keys.key_id(public), "pem": keys.public_pem(public).decode()},
             [*keys.public_pem(public).decode().splitlines(), f"key id {keys.key_id(public)}"])
        return EXIT_OK
    if args.verb == "init":
        if (args.store / "archive.db").exists():
            raise ArchiveError(f"archive store {args.store} already holds an archive; nothing to do")
        Archive(args.store, args.cold, create=True).close()
        emit(args, {"store": str(args.store)}, [f"archive created in {args.store}"])
        return EXIT_OK
    with Archive(args.store, args.cold) as archive:
        return VERBS[args.verb](archive, args)


def do_ingest(archive: Archive, args: argparse.Namespace) -> int:
    received = timefmt.parse_user_time(args.received, "--received") if args.received else None
    envelope = Envelope(args.queue_id, args.sender, tuple(args.recipient), args.direction, args.channel,
                        args.account, args.client_address, received, args.instance)
    record = archive.ingest(sys.stdin.buffer.read(), envelope)
    emit(args, record.as_dict(), [f"archived as record {record.id}: {record.label()}"])
    return EXIT_OK


def do_search(archive: Archive, args: argparse.Namespace) -> int:
    criteria = criteria_of(args)
    found = search(archive, criteria)
    more = "; the limit: --limit 0 shows all" if criteria.limit and len(found) == criteria.limit else ""
    emit(args, [r.as_dict() for r in found], [hit_line(r) for r in found] + [f"{len(found)} messages{more}"])
    return EXIT_OK


def do_export(archive: Archive, args: argparse.Namespace) -> int:
    public = keys.load_public_key(args.public_key)
    if args.checkpoint_key:
        signing = keys.load_signing_key(args.checkpoint_key)
        if keys.key_id(signing.public_key()) != keys.key_id(public):
            raise ArchiveError("--checkpoint-key is not the private key of --public-key; give the matching pair")
        log.checkpoint(archive, signing, args.operator)
    result = export(archive, criteria_of(args), args.out, public, mbox=args.mbox)
    emit(args, result.as_dict(), [f"exported {result.messages} messages with {result.entries} log entries to "
                                  f"{result.folder}; verify with: python3 {result.folder}/verify_export.py "
                                  f"{result.folder} --public-key <the site's key>"])
    return EXIT_OK


def anchor(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not (seq.isdigit() and int(seq) > 0 and len(digest) == 64 and all(c in "0123456789abcdefABCDEF" for c in digest)):
        raise ArchiveError(f"--anchor {printable(text)}: expected SEQ:HASH, a log entry number and its 64 hex "
                           "digits, as an audit report shows the last checkpoint")
    return int(seq), digest.lower()


def do_verify(archive: Archive, args: argparse.Namespace) -> int:
    report = verify(archive, keys.load_public_key(args.public_key), [anchor(text) for text in args.anchor])
    counts = ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in report.counts.items())
    lines = [f"PROBLEM: {p.text}" for p in report.problems] + [f"note: {n}" for n in report.notes]
    lines.append(f"{'OK' if report.ok else 'FAILED'}: {counts}; {len(report.problems)} problems")
    emit(args, report.as_dict(), lines)
    return EXIT_OK if report.ok else EXIT_FOUND


def do_reconcile(archive: Archive, args: argparse.Namespace) -> int:
    since = timefmt.parse_user_time(args.since, "--since")
    until = timefmt.parse_user_time(args.until, "--until", end_of_day=True)
    if args.log == "-":
        result = reconcile(archive, sys.stdin, since, until)
    else:
        try:
            with open(args.log, encoding="utf-8", errors="replace") as lines:
                result = reconcile(archive, lines, since, until)
        except FileNotFoundError:
            raise ArchiveError(f"--log {args.log}: no such file; give journalctl output, e.g. journalctl -u "
                               "'postfix*' --since ... > FILE") from None
    lines = [f"missing: {m['instance']}/{m['queue_id']} accepted {m['time']} from <{m['sender']}> {m['size']} B"
             + (f" ({m['note']})" if m["note"] else "") for m in result.missing]
    lines += [f"archived twice: {t['instance']}/{t['queue_id']} records {', '.join(map(str, t['records']))}"
              for t in result.twice]
    lines += [f"archived but never accepted: {n['instance']}/{n['queue_id'] or '-'} record {n['record']} received "
              f"{n['received']}" for n in result.never_accepted]
    lines.append(f"{'OK' if result.ok else 'FAILED'}: {result.accepted} accepted, {result.archived} archived, "
                 f"{len(result.missing)} missing, {len(result.twice)} archived twice, {len(result.never_accepted)} "
                 f"archived but never accepted ({result.since} to {result.until})")
    emit(args, result.as_dict(), lines)
    return EXIT_OK if result.ok else EXIT_FOUND


def do_hold(archive: Archive, args: argparse.Namespace) -> int:
    held = retention.hold(archive, args.case_id, args.address, day(args.date_from, "--from"),
                          day(args.date_to, "--to"), args.reason, args.operator)
    emit(args, held.as_dict(), [f"hold {held.case_id} placed (log entry {held.seq})"])
    return EXIT_OK


def do_release(archive: Archive, args: argparse.Namespace) -> int:
    entry = retention.release(archive, args.case_id, args.operator, args.reason)
    emit(args, entry.as_dict(), [f"hold {args.case_id} released (log entry {entry.seq})"])
    return EXIT_OK


def do_holds(archive: Archive, args: argparse.Namespace) -> int:
    found = retention.holds(archive, include_released=args.all)
    lines = [f"{h.case_id}: {', '.join(h.addresses) or 'all addresses'}, {h.date_from or 'any time'} to "
             f"{h.date_to or 'any time'}; {h.reason} (by {h.operator}, {h.time}"
             + (f", released at entry {h.released_seq})" if h.released_seq else ")") for h in found]
    emit(args, [h.as_dict() for h in found], lines + [f"{len(found)} holds"])
    return EXIT_OK


def do_retention(archive: Archive, args: argparse.Namespace) -> int:
    path = args.policy or archive.root / "retention.json"
    policy = retention.Policy.load(path) if args.policy or path.exists() else retention.Policy()
    now = timefmt.parse_user_time(args.at, "--at") if args.at else timefmt.now()
    if args.apply:
        items = retention.retention_apply(archive, now, policy, args.operator)
    else:
        items = retention.retention_plan(archive, now, policy)
    verb = "deleted" if args.apply else "would delete"
    lines = [f"{verb}: record {e.record} {e.sha256} ({e.instance}/{e.queue_id}, received {e.received}; {e.rule})"
             for e in items]
    source = path if args.policy or path.exists() else "the default policy"
    emit(args, {"applied": args.apply, "policy": policy.as_dict(), "records": [e.as_dict() for e in items]},
         lines + [f"{len(items)} records {verb} under {source}"])
    return EXIT_OK


def do_tier(archive: Archive, args: argparse.Namespace) -> int:
    if args.after_days < 0:
        raise ArchiveError("--after-days must be 0 or more")
    now = timefmt.now()
    if args.dry_run:
        plan = retention.tier_plan(archive, now, args.after_days)
        emit(args, plan, [f"{day}: {len(hashes)} messages would move" for day, hashes in plan.items()])
        return EXIT_OK
    results, damaged = retention.tier_apply(archive, now, args.after_days, args.operator)
    lines = [f"pack {r.pack}: {r.members} messages, {r.received_bytes} B in {r.size} B (log entry {r.seq})"
             for r in results]
    lines += [f"left hot: message {sha} (its file no longer matches; run verify)" for sha in damaged]
    emit(args, {"packs": [r.as_dict() for r in results], "damaged": damaged}, lines + [f"{len(results)} packs"])
    return EXIT_OK


def do_checkpoint(archive: Archive, args: argparse.Namespace) -> int:
    if args.if_changed:
        last = archive.connection().execute("SELECT kind FROM log ORDER BY seq DESC LIMIT 1").fetchone()
        if last is not None and last[0] == "checkpoint":
            emit(args, {"signed": False}, ["nothing new since the last checkpoint"])
            return EXIT_OK
    entry = log.checkpoint(archive, keys.load_signing_key(args.key), args.operator)
    emit(args, entry.as_dict() | {"signed": True},
         [f"checkpoint at seq {entry.seq} signs entry {entry.details['head_seq']} "
          f"(key {entry.details['key_id']})"])
    return EXIT_OK


def do_stats(archive: Archive, args: argparse.Namespace) -> int:
    data = stats(archive)
    emit(args, data, [f"{name.replace('_', ' ')}: {value}" for name, value in data.items()])
    return EXIT_OK


def do_audit(args: argparse.Namespace) -> int:
    from . import evidence
    from .service import Settings

    settings = Settings.load(args.config)
    if settings.public_key is None:
        raise ArchiveError(f"{args.config}: names no public_key; redeploy (role archive) to write it")
    since, until = evidence.window(args.hours)
    with contextlib.ExitStack() as stack:
        lines = sys.stdin if args.log == "-" else stack.enter_context(
            open(args.log, encoding="utf-8", errors="replace"))
        archive = stack.enter_context(Archive(settings.store, settings.cold_store))
        data = evidence.gather(archive, public_key=settings.public_key, policy_file=settings.retention,
                               spool=settings.spool if settings.on_failure == "queue" else None,
                               on_failure=settings.on_failure, mail_log=lines, since=since, until=until,
                               anchors=[anchor(text) for text in args.anchor])
    print(json.dumps(data, sort_keys=True, ensure_ascii=True))
    return EXIT_OK


VERBS = {"ingest": do_ingest, "search": do_search, "export": do_export, "verify": do_verify,
         "reconcile": do_reconcile, "hold": do_hold, "release": do_release, "holds": do_holds,
         "retention": do_retention, "tier": do_tier, "checkpoint": do_checkpoint, "stats": do_stats}
