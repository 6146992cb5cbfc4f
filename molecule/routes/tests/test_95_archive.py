"""The archive (issue 11) behind a real Postfix: every way in is journaled once, found again by a Bcc recipient
and a word of its body, exported and verified offline, a changed byte named by verify, a full store defers new
mail until space is freed, the journaling milter killed during a burst loses nothing, the audit's reader finds
the whole scenario archived, a legal hold outlives retention, and mail moved to cold packs is still found."""

from __future__ import annotations

import json
import shlex
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from mailprobe import build_message, new_token, outside_sender, smtp_transaction, wait_until

from conftest import ORDERS_PORT, ORDERS_SENDER, OUTSIDE_DOMAIN, SITE_DOMAIN, STAFF

ARCHIVE = "/usr/local/sbin/mailappliance-archive"
STORE = "/srv/mail-archive"
COLD_STORE = "/srv/mail-archive-cold"
PUBLIC_KEY = "/etc/mailappliance/archive-public.key"
SIGNING_KEY = "/etc/mailappliance/archive-signing.key"
JOURNAL_TIMEOUT = 60
# Messages on each way in, with the direction and channel the index must give them: several hundred in all,
# before the burst below and the orders burst of test_40_burst.py add thousands more.
PER_WAY = 40
# Messages sent while the store is full, then again once it has room.
FULL_STORE_MESSAGES = 20
WAYS = {"inbound": ("inbound", "staff"), "submission": ("outbound", "staff"), "submissions": ("internal", "staff"),
        "sendmail": ("local", "staff"), "orders": ("outbound", "orders")}


def archive_json(host: Any, *args: str, ok: tuple[int, ...] = (0,)) -> Any:
    out = host.run(" ".join([ARCHIVE, *map(shlex.quote, args), "--store", STORE, "--json"]))
    assert out.rc in ok, f"{args[0]} exited {out.rc}: {out.stderr.strip() or out.stdout[-500:]}"
    return json.loads(out.stdout) if out.stdout.strip() else None


def search(host: Any, token: str) -> list[dict[str, Any]]:
    # The token's hex part is one word to the full-text index.
    return archive_json(host, "search", "--text", token.removeprefix("probe-"))


def journaled(host: Any, token: str, count: int = 1) -> list[dict[str, Any]]:
    return wait_until(lambda: (found := search(host, token)) and len(found) >= count and found, JOURNAL_TIMEOUT,
                      interval=1.0) or []


def reconcile(host: Any, since: datetime) -> dict[str, Any]:
    start = (since - timedelta(seconds=5)).strftime("%Y-%m-%d %H:%M:%S")
    until = (datetime.now(timezone.utc) + timedelta(seconds=5)).strftime("%Y-%m-%d %H:%M:%S")
    command = (f"journalctl -u 'postfix@*' --since '{start} UTC' -o short-iso --no-pager | {ARCHIVE} reconcile "
               f"--store {STORE} --log - --since '{start}' --until '{until}' --json")
    out = host.run(command)
    assert out.rc in (0, 1), out.stderr
    return json.loads(out.stdout)


def test_every_way_in_is_journaled_once(host, appliance, figures):
    since = datetime.now(timezone.utc)
    visible = f"someone@{OUTSIDE_DOMAIN}"
    login = (STAFF, appliance.password(STAFF))
    expected: dict[str, tuple[str, str]] = {}
    first: dict[str, str] = {}
    for number in range(PER_WAY):
        tokens = {way: new_token() for way in WAYS}
        first = first or tokens
        sender = outside_sender(tokens["inbound"])
        # To someone outside, the first one with a Bcc recipient the headers never name.
        bcc = [f"hidden-{tokens['submission'][-8:]}@{OUTSIDE_DOMAIN}"] if number == 0 else []
        outcomes = {
            "inbound": smtp_transaction(appliance.ip, 25, sender, [STAFF], build_message(sender, STAFF,
                                                                                        tokens["inbound"])),
            "submission": smtp_transaction(appliance.ip, 587, STAFF, [visible, *bcc],
                                           build_message(STAFF, visible, tokens["submission"]), starttls=True,
                                           login=login),
            "submissions": smtp_transaction(appliance.ip, 465, STAFF, [STAFF],
                                            build_message(STAFF, STAFF, tokens["submissions"]), implicit_tls=True,
                                            login=login),
            "orders": appliance.submit(ORDERS_PORT, "shop", ORDERS_SENDER, visible,
                                       build_message(ORDERS_SENDER, visible, tokens["orders"])),
        }
        for way, outcome in outcomes.items():
            assert outcome.accepted, f"{way}: {outcome}"
        message = build_message(f"root@{SITE_DOMAIN}", STAFF, tokens["sendmail"]).decode()
        local = host.run(f"printf %s {shlex.quote(message)} | /usr/sbin/sendmail -i -f root@{SITE_DOMAIN} {STAFF}")
        assert local.rc == 0, local.stderr
        expected.update({token: WAYS[way] for way, token in tokens.items()})

    start = since.strftime("%Y-%m-%dT%H:%M:%S")
    records = wait_until(lambda: (found := archive_json(host, "search", "--since", start, "--limit", "0"))
                         and len({r["subject"] for r in found} & set(expected)) == len(expected) and found,
                         JOURNAL_TIMEOUT, interval=2.0) or []
    by_token: dict[str, list[dict[str, Any]]] = {token: [] for token in expected}
    for record in records:
        by_token.get(record["subject"], []).append(record)
    for token, (direction, channel) in expected.items():
        found = by_token[token]
        assert len(found) == 1, f"{len(found)} records for {token}: {found}"
        assert (found[0]["direction"], found[0]["channel"]) == (direction, channel), found[0]
        account = "shop" if channel == "orders" else "" if direction in ("inbound", "local") else STAFF
        assert found[0]["account"] == account, found[0]

    # The Bcc recipient is in the index, though no header names it.
    bcc = f"hidden-{first['submission'][-8:]}@{OUTSIDE_DOMAIN}"
    by_bcc = archive_json(host, "search", "--recipient", bcc)
    assert [hit["sha256"] for hit in by_bcc] == [search(host, first["submission"])[0]["sha256"]]

    result = reconcile(host, since)
    figures.report("archive: every way in", [
        f"{PER_WAY} messages on each of {', '.join(WAYS)}: {len(expected)} sent, each journaled once with its "
        "direction, channel and account",
        f"reconcile: {result['accepted']} accepted, {result['archived']} archived, {len(result['missing'])} missing, "
        f"{len(result['twice'])} archived twice",
    ])
    assert result["missing"] == [] and result["twice"] == [], json.dumps(result, indent=1)[:3000]
    assert result["accepted"] >= len(expected)


def test_an_export_verifies_offline_and_a_changed_byte_is_named(host, appliance):
    token = new_token()
    sender = outside_sender(token)
    assert smtp_transaction(appliance.ip, 25, sender, [STAFF], build_message(sender, STAFF, token)).accepted
    [record] = journaled(host, token)

    out_dir = f"/tmp/export-{token[-8:]}"
    archive_json(host, "export", "--text", token.removeprefix("probe-"), "--out", out_dir, "--public-key",
                 PUBLIC_KEY, "--checkpoint-key", SIGNING_KEY)
    checked = host.run(f"cd / && python3 -I {out_dir}/verify_export.py {out_dir}")
    assert checked.rc == 0, checked.stdout + checked.stderr

    # A copy of the store with one byte of that message changed: verify names the message.
    copy = f"/tmp/store-{token[-8:]}"
    assert host.run(f"cp -a {STORE} {copy} && chown -R mailappliance-archive: {copy}").rc == 0
    sha = record["sha256"]
    path = host.run(f"find {copy}/objects -name '{sha}*' -type f").stdout.strip()
    assert path, f"no object file for {sha}"
    host.run(f"printf '\\x00' | dd of={path} bs=1 seek=40 conv=notrunc status=none")
    out = host.run(f"{ARCHIVE} verify --store {copy} --public-key {PUBLIC_KEY}")
    assert out.rc == 1 and sha in out.stdout, out.stdout[-2000:]
    host.run(f"rm -rf {copy} {out_dir}")


def test_a_full_store_defers_new_mail_until_space_is_freed(host, appliance, figures):
    tokens = [new_token() for _ in range(FULL_STORE_MESSAGES)]
    filler = f"{STORE}/filler"
    host.run(f"dd if=/dev/zero of={filler} bs=1M count=100 status=none")
    try:
        refused = {token: smtp_transaction(appliance.ip, 25, outside_sender(token), [STAFF],
                                           build_message(outside_sender(token), STAFF, token)) for token in tokens}
        free = host.run(f"df --output=avail -B1 {STORE} | tail -1").stdout.strip()
    finally:
        host.run(f"rm -f {filler}")
    for token, outcome in refused.items():
        assert outcome.stage == "data" and 400 <= outcome.code < 500, f"{token}: {outcome}"
    # The senders retry, as every MTA does after a 4xx: now each is taken and journaled once.
    for token in tokens:
        again = smtp_transaction(appliance.ip, 25, outside_sender(token), [STAFF],
                                 build_message(outside_sender(token), STAFF, token))
        assert again.accepted, f"{token}: {again}"
    counts = [len(journaled(host, token)) for token in tokens]
    figures.report("archive: the store full, then freed", [
        f"store full ({free} bytes free): {len(refused)} messages, "
        f"{sum(400 <= o.code < 500 for o in refused.values())} answered 4xx at DATA "
        f"({next(iter(refused.values()))})",
        f"space freed, the same {len(tokens)} sent again: {sum(counts)} journaled, each {set(counts)} time(s)",
    ])
    assert counts == [1] * len(tokens)


def test_the_milter_killed_during_a_burst_loses_nothing(host, appliance, figures):
    since = datetime.now(timezone.utc)
    tokens = [new_token() for _ in range(240)]
    outcomes: dict[str, Any] = {}

    def send(batch: list[str]) -> None:
        for token in batch:
            sender = outside_sender(token)
            outcomes[token] = smtp_transaction(appliance.ip, 25, sender, [STAFF], build_message(sender, STAFF, token))

    threads = [threading.Thread(target=send, args=(tokens[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    # Three kills while the four connections send; systemd's socket starts the milter again on the next call.
    kills = []
    for _ in range(3):
        time.sleep(1.5)
        kills.append(host.run("systemctl kill -s KILL mailappliance-archive.service"))
    for thread in threads:
        thread.join()
    assert all(killed.rc == 0 for killed in kills), [killed.stderr for killed in kills]
    deferred = [token for token, outcome in outcomes.items() if not outcome.accepted]
    # What the kill cut off got a 4xx, never a 5xx; the senders try again.
    assert all(400 <= outcomes[t].code < 500 for t in deferred), [str(outcomes[t]) for t in deferred]
    for token in deferred:
        sender = outside_sender(token)
        retry = wait_until(lambda: (o := smtp_transaction(appliance.ip, 25, sender, [STAFF],
                                                          build_message(sender, STAFF, token))).accepted and o,
                           60, interval=2.0)
        assert retry, f"{token} still refused"
    for token in tokens:
        assert len(journaled(host, token)) >= 1, f"{token} not journaled"
    result = reconcile(host, since)
    figures.report("archive: journaling milter killed during a burst", [
        f"{len(tokens)} messages from 4 connections, the milter killed 3 times; {len(deferred)} got a 4xx when it "
        f"was killed and were sent again",
        f"reconcile: {result['accepted']} accepted, {result['archived']} archived, {len(result['missing'])} missing, "
        f"{len(result['twice'])} archived twice, {len(result['never_accepted'])} archived but never accepted",
    ])
    assert result["missing"] == [] and result["twice"] == [], json.dumps(result, indent=1)[:3000]


def test_the_audit_reads_a_complete_and_intact_archive(host, figures):
    """The command playbooks/audit.yml runs, over the whole scenario's mail (the orders burst included): every
    message Postfix accepted in the last day is archived once, and the store verifies."""
    command = ("set -o pipefail; journalctl -u 'postfix@*' --since -25h -o short-iso --no-pager "
               f"| {ARCHIVE} audit --config /etc/mailappliance/archive.json --log - --hours 24")
    out = host.run(f"bash -c {shlex.quote(command)}")
    assert out.rc == 0, out.stderr
    found = json.loads(out.stdout)
    coverage, integrity = found["reconcile"], found["verify"]
    figures.report("archive: the audit's reconcile over the whole scenario", [
        f"{coverage['accepted']} accepted, {coverage['archived']} archived, {coverage['missing_count']} missing, "
        f"{coverage['twice_count']} archived twice, {coverage['never_accepted_count']} archived but never accepted",
        f"verify: {integrity['counts']}, {integrity['problem_count']} problems; store "
        f"{found['store']['free'] / 2**20:.0f} MiB free of {found['store']['total'] / 2**20:.0f} MiB",
    ])
    assert coverage["missing_count"] == 0 and coverage["twice_count"] == 0, json.dumps(coverage)[:3000]
    # The orders burst alone is thousands (ROUTES_BURST); every way in of this file adds to it.
    assert coverage["accepted"] >= 500
    assert integrity["ok"], integrity["problems"]
    assert found["retention"]["policy"]["default_days"] == 2557 and found["holds"] == []


def test_a_held_message_survives_retention_that_deletes_its_neighbours(host, appliance):
    """Last in the scenario: a one-day policy judged three days from now deletes every record but the held one."""
    token_held, token_free = new_token(), new_token()
    held_sender = outside_sender(token_held)
    for token, sender in ((token_held, held_sender), (token_free, outside_sender(token_free))):
        assert smtp_transaction(appliance.ip, 25, sender, [STAFF], build_message(sender, STAFF, token)).accepted
        journaled(host, token)
    archive_json(host, "hold", f"case-{token_held[-8:]}", "--address", held_sender, "--reason", "routes scenario")
    policy = "/tmp/retention-1-day.json"
    host.run(f"echo '{{\"rules\": [{{\"domains\": [], \"direction\": \"\", \"days\": 1}}]}}' > {policy}")
    later = (datetime.now(timezone.utc) + timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
    free_sha, held_sha = search(host, token_free)[0]["sha256"], search(host, token_held)[0]["sha256"]
    applied = archive_json(host, "retention", "--policy", policy, "--at", later, "--apply")
    deleted = {record["sha256"] for record in applied["records"]}
    assert free_sha in deleted and held_sha not in deleted
    assert search(host, token_free) == [] and len(search(host, token_held)) == 1
    out = host.run(f"{ARCHIVE} verify --store {STORE} --public-key {PUBLIC_KEY}")
    # Deletions are log entries: the archive still verifies.
    assert out.rc == 0, out.stdout[-2000:]


def test_old_mail_moves_to_cold_packs_and_stays_searchable_and_verifiable(host, appliance):
    """After the retention run: what is left moves to the cold store (the daily timer does it after
    cold_after_days; here everything, at once) and is still found, read back and verified."""
    token = new_token()
    sender = outside_sender(token)
    assert smtp_transaction(appliance.ip, 25, sender, [STAFF], build_message(sender, STAFF, token)).accepted
    [record] = journaled(host, token)
    moved = archive_json(host, "tier", "--cold", COLD_STORE, "--after-days", "0")
    assert moved["packs"] and moved["damaged"] == []
    assert host.run(f"find {STORE}/objects -name '{record['sha256']}*' -type f").stdout.strip() == ""
    assert [hit["tier"] for hit in search(host, token)] == ["cold"]
    out = host.run(f"{ARCHIVE} verify --store {STORE} --public-key {PUBLIC_KEY}")
    assert out.rc == 0, out.stdout[-2000:]
    out_dir = f"/tmp/export-cold-{token[-8:]}"
    archive_json(host, "export", "--text", token.removeprefix("probe-"), "--out", out_dir, "--public-key",
                 PUBLIC_KEY, "--checkpoint-key", SIGNING_KEY)
    checked = host.run(f"cd / && python3 -I {out_dir}/verify_export.py {out_dir} && rm -rf {out_dir}")
    assert checked.rc == 0, checked.stdout + checked.stderr
