"""The archive: section of the site model: stores, failure mode, retention rules and checkpoints load into typed data
with their defaults and the implied last rule; each mistake gives one exact, located message."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from conftest import ARCHIVE_SITE, MINIMAL_SITE, PROJECT_DIR, write_site
from mailappliance.errors import UserError, is_unsafe_char
from mailappliance.site import Archive, RetentionRule, load_site

DELETE = object()
# A valid archive: section on MINIMAL_SITE; each bad case changes one part of it.
ARCHIVE: dict = {
    "store": "/srv/mail-archive",
    "cold_store": "/srv/mail-archive-cold",
    "cold_after_days": 90,
    "retention": [{"domains": ["broker.example"], "direction": "outbound", "days": 3650}],
}


def site_with(path: str = "", value: object = None, **top: object) -> dict:
    """MINIMAL_SITE with ARCHIVE, the value at `path` ("store", "retention[0].days") in its archive: section
    replaced (or removed with DELETE), and top-level keys changed."""
    data = copy.deepcopy(MINIMAL_SITE)
    data["archive"] = copy.deepcopy(ARCHIVE)
    if path:
        steps = [int(step) if step.isdigit() else step for step in re.split(r"[.\[\]]+", path.strip("]"))]
        target = data["archive"]
        for step in steps[:-1]:
            target = target[step]
        if value is DELETE:
            del target[steps[-1]]
        else:
            target[steps[-1]] = value
    data.update(top)
    return data


def rules(*rules: dict) -> dict:
    return site_with("retention", list(rules))


def archive_of(directory: Path, data: dict | str) -> Archive | None:
    return load_site(write_site(directory, data)).archive


def errors_of(directory: Path, data: dict | str) -> list[str]:
    with pytest.raises(UserError) as caught:
        load_site(write_site(directory, data))
    return [line.removeprefix("site.yml: ") for line in caught.value.lines]


def test_the_archive_example_loads_into_the_model(archive_site: Path) -> None:
    assert load_site(archive_site).archive == Archive(
        store="/srv/mail-archive", cold_store="/srv/mail-archive-cold", cold_after_days=90, on_failure="defer",
        retention=(RetentionRule(3650, "outbound", ("broker.example", "*.broker.example")),
                   RetentionRule(365, "local"),
                   RetentionRule(2557)),
        checkpoint_minutes=60)


def test_without_archive_nothing_is_archived_and_an_empty_one_takes_every_default(site_dir: Path) -> None:
    assert archive_of(site_dir, MINIMAL_SITE) is None
    assert archive_of(site_dir, dict(MINIMAL_SITE, archive={})) == Archive(
        store="/var/lib/mailappliance/archive", cold_store="", cold_after_days=0, on_failure="defer",
        retention=(RetentionRule(2557),), checkpoint_minutes=60)


def test_retention_ends_with_the_default_unless_the_file_ends_with_a_catch_all(site_dir: Path) -> None:
    archive = archive_of(site_dir, site_with())
    assert archive is not None
    assert archive.retention == (RetentionRule(3650, "outbound", ("broker.example",)), RetentionRule(2557))
    # A file's own catch-all replaces the default one; an empty list is no rule at all.
    last = rules({"direction": "inbound", "days": 30}, {"days": 3650})
    assert archive_of(site_dir, last).retention == (RetentionRule(30, "inbound"), RetentionRule(3650))
    assert archive_of(site_dir, site_with("retention", [])).retention == (RetentionRule(2557),)


def test_rules_that_take_other_messages_may_follow_each_other(site_dir: Path) -> None:
    data = rules(
        {"domains": ["shop.broker.example"], "days": 100},
        {"domains": ["*.broker.example", "broker.example"], "direction": "outbound", "days": 3650},
        {"domains": ["*.broker.example"], "days": 200},
        {"direction": "inbound", "days": 30},
        {"domains": ["partner.example"], "direction": "outbound", "days": 300},
        {"direction": "outbound", "days": 400},
        {"domains": ["other.example"], "direction": "internal", "days": 500},
    )
    archive = archive_of(site_dir, data)
    assert archive is not None
    assert [rule.days for rule in archive.retention] == [100, 3650, 200, 30, 300, 400, 500, 2557]


def test_domains_are_lower_cased_and_the_other_values_kept(site_dir: Path) -> None:
    data = rules({"domains": ["Broker.EXAMPLE", "*.Example.DE"], "direction": "internal", "days": 1},
                 {"direction": "local", "days": 36500})
    data["archive"] |= {"on_failure": "queue", "checkpoint_minutes": 1440, "cold_after_days": 36500}
    archive = archive_of(site_dir, data)
    assert archive == Archive(store="/srv/mail-archive", cold_store="/srv/mail-archive-cold", cold_after_days=36500,
                              on_failure="queue",
                              retention=(RetentionRule(1, "internal", ("broker.example", "*.example.de")),
                                         RetentionRule(36500, "local"), RetentionRule(2557)),
                              checkpoint_minutes=1440)


@pytest.mark.parametrize("store", [
    "/srv/mail-archive", "/data/Archive_2026.v1", "/mnt", "/archive", "/var/lib/mailappliance/archive",
    "/var/spool/mail-archive", "/var/lib/archive", "/home/archive", "/srv/a-b/c.d/e_f", "/var/mail/archive",
])
def test_store_paths_that_are_folders_of_their_own(site_dir: Path, store: str) -> None:
    assert archive_of(site_dir, site_with("store", store)).store == store
    cold = dict(MINIMAL_SITE, archive={"store": "/x/hot", "cold_store": store, "cold_after_days": 7})
    assert archive_of(site_dir, cold).cold_store == store


def test_only_a_given_store_is_named_as_such(site_dir: Path) -> None:
    data = dict(MINIMAL_SITE, archive={"cold_store": "/var/lib/mailappliance", "cold_after_days": 30})
    assert errors_of(site_dir, data) == [
        'archive.cold_store: "/var/lib/mailappliance" contains archive.store ("/var/lib/mailappliance/archive", the '
        "default); give the cold store a folder of its own, e.g. /srv/mail-archive-cold"]


STORE_FIX = "give the absolute path of a folder of its own, e.g. /srv/mail-archive"
COLD_FIX = "give the absolute path of a folder of its own, e.g. /srv/mail-archive-cold"
CHARACTERS_FIX = ("use letters, digits, dots, hyphens and underscores between the slashes, e.g. /srv/mail-archive (the "
                  "path goes into systemd units and Ansible tasks)")
NORMAL = "is not in normal form (no . or .. parts, double or trailing slashes)"
TIERS_FIX = "give the cold store a folder of its own, e.g. /srv/mail-archive-cold"
ON_FAILURE_FIX = ("use defer (new mail gets 4xx while the store cannot take it; the default) or queue (new mail is "
                  "accepted and kept in a local spool until the store takes it; the audit warns)")
DIRECTION_FIX = ("use inbound (from outside to the site), outbound (from the site to outside), internal (between the "
                 "site's addresses) or local (sent by the host itself); leave direction out for every direction")
DOMAIN_FIX = ("give a sender or recipient domain (broker.example) or a wildcard for every name below a domain "
              "(*.broker.example, *.de); leave domains out for every domain")
DAYS_FIX = "use a whole number of days from 1 to 36500, e.g. 2557"
CATCH_ALL = {"days": 2557}
BROKER = {"domains": ["broker.example"], "direction": "outbound", "days": 3650}
BAD_ARCHIVE = [
    # -- the section and unknown keys
    pytest.param(dict(MINIMAL_SITE, archive=None),
                 "archive: is empty; write archive: {} to archive with every default, or remove the line for no "
                 "archive", id="empty-section"),
    pytest.param(dict(MINIMAL_SITE, archive=["store"]),
                 "archive: expected a mapping, got a list; write it as archive: {store: /srv/mail-archive, retention: "
                 "[{days: 2557}]}", id="section-not-a-mapping"),
    pytest.param(site_with("retension", 7),
                 "archive.retension: unknown key; did you mean retention? allowed keys are store, cold_store, "
                 "cold_after_days, on_failure, retention, checkpoint_minutes", id="unknown-key"),
    pytest.param(site_with("signing_key", "secret"),
                 "archive.signing_key: unknown key; allowed keys are store, cold_store, cold_after_days, on_failure, "
                 "retention, checkpoint_minutes", id="key-in-the-site-file"),
    # -- store
    pytest.param(site_with("store", "srv/mail-archive"),
                 f'archive.store: "srv/mail-archive" is not an absolute path; {STORE_FIX}', id="relative"),
    pytest.param(site_with("store", 5), f"archive.store: expected a folder path, got 5; {STORE_FIX}", id="number"),
    pytest.param(site_with("store", ""), f'archive.store: expected a folder path, got ""; {STORE_FIX}', id="empty"),
    pytest.param(site_with("store", "/srv/mail archive"),
                 f'archive.store: "/srv/mail archive" contains a space; {CHARACTERS_FIX}', id="space"),
    pytest.param(site_with("store", "/srv/%i"), f'archive.store: "/srv/%i" contains "%"; {CHARACTERS_FIX}',
                 id="systemd-specifier"),
    pytest.param(site_with("store", "/srv/{{x}}"), f'archive.store: "/srv/{{{{x}}}}" contains "{{"; {CHARACTERS_FIX}',
                 id="jinja"),
    pytest.param(site_with("store", "/srv/archivé"), f'archive.store: "/srv/archivé" contains "é"; {CHARACTERS_FIX}',
                 id="non-ascii"),
    pytest.param(site_with("store", "/srv/mail-archive/"),
                 f'archive.store: "/srv/mail-archive/" {NORMAL}; write it as /srv/mail-archive', id="trailing-slash"),
    pytest.param(site_with("store", "/srv//mail-archive"),
                 f'archive.store: "/srv//mail-archive" {NORMAL}; write it as /srv/mail-archive', id="double-slash"),
    pytest.param(site_with("store", "/srv/./mail-archive"),
                 f'archive.store: "/srv/./mail-archive" {NORMAL}; write it as /srv/mail-archive', id="dot"),
    pytest.param(site_with("store", "/srv/archive/../mail-archive"),
                 f'archive.store: "/srv/archive/../mail-archive" {NORMAL}; write it as /srv/mail-archive', id="dot-dot"),
    pytest.param(site_with("store", "/.."), f'archive.store: "/.." {NORMAL}; {STORE_FIX}', id="dot-dot-to-root"),
    pytest.param(site_with("store", "/"), f'archive.store: "/" is the root of the file system; {STORE_FIX}',
                 id="root"),
    pytest.param(site_with("store", "/etc/mail-archive"),
                 f'archive.store: "/etc/mail-archive" is inside /etc, the folder of the system\'s configuration; '
                 f"{STORE_FIX}", id="etc"),
    pytest.param(site_with("store", "/etc"),
                 f'archive.store: "/etc" is the folder of the system\'s configuration; {STORE_FIX}', id="etc-itself"),
    pytest.param(site_with("store", "/proc/archive"),
                 f'archive.store: "/proc/archive" is inside /proc, a kernel file system; {STORE_FIX}', id="proc"),
    pytest.param(site_with("store", "/sys/archive"),
                 f'archive.store: "/sys/archive" is inside /sys, a kernel file system; {STORE_FIX}', id="sys"),
    pytest.param(site_with("store", "/dev/sdb1"),
                 f'archive.store: "/dev/sdb1" is inside /dev, the folder of device files; {STORE_FIX}', id="dev"),
    pytest.param(site_with("store", "/run/archive"),
                 f'archive.store: "/run/archive" is inside /run, a file system in memory, emptied at boot; '
                 f"{STORE_FIX}", id="run"),
    pytest.param(site_with("store", "/var/run/archive"),
                 f'archive.store: "/var/run/archive" is inside /var/run, a link to /run, emptied at boot; '
                 f"{STORE_FIX}", id="var-run"),
    pytest.param(site_with("store", "/tmp/archive"),
                 f'archive.store: "/tmp/archive" is inside /tmp, the folder of temporary files, emptied at boot; '
                 f"{STORE_FIX}", id="tmp"),
    pytest.param(site_with("store", "/var/tmp/archive"),
                 f'archive.store: "/var/tmp/archive" is inside /var/tmp, the folder of temporary files, which '
                 f"systemd-tmpfiles removes after 30 days; {STORE_FIX}", id="var-tmp"),
    pytest.param(site_with("store", "/boot/archive"),
                 f'archive.store: "/boot/archive" is inside /boot, the folder of the boot loader and kernels; '
                 f"{STORE_FIX}", id="boot"),
    pytest.param(site_with("store", "/usr/local/archive"),
                 f'archive.store: "/usr/local/archive" is inside /usr, the folder of the installed software; '
                 f"{STORE_FIX}", id="usr"),
    pytest.param(site_with("store", "/lib/archive"),
                 f'archive.store: "/lib/archive" is inside /lib, a link into /usr, the installed software; '
                 f"{STORE_FIX}", id="lib"),
    pytest.param(site_with("store", "/var/spool/postfix/archive"),
                 f'archive.store: "/var/spool/postfix/archive" is inside /var/spool/postfix, a Postfix queue folder; '
                 f"{STORE_FIX}", id="postfix-queue"),
    pytest.param(site_with("store", "/var/spool/postfix-orders"),
                 f'archive.store: "/var/spool/postfix-orders" is a Postfix queue folder; {STORE_FIX}',
                 id="channel-queue"),
    pytest.param(site_with("store", "/var/lib/postfix-bulk/archive"),
                 f'archive.store: "/var/lib/postfix-bulk/archive" is inside /var/lib/postfix-bulk, a Postfix data '
                 f"folder; {STORE_FIX}", id="postfix-data"),
    pytest.param(site_with("store", "/var/vmail/archive"),
                 f'archive.store: "/var/vmail/archive" is inside /var/vmail, the mailboxes\' folder; {STORE_FIX}',
                 id="mailboxes"),
    pytest.param(site_with("store", "/var"),
                 f'archive.store: "/var" contains /var/spool/postfix, a Postfix queue folder; {STORE_FIX}', id="var"),
    pytest.param(site_with("store", "/var/lib"),
                 f'archive.store: "/var/lib" contains /var/lib/postfix, a Postfix data folder; {STORE_FIX}',
                 id="var-lib"),
    pytest.param(site_with("store", "/srv"), f'archive.store: "/srv" is a folder other software shares; {STORE_FIX}',
                 id="srv"),
    pytest.param(site_with("store", "/var/log"),
                 f'archive.store: "/var/log" is a folder other software shares; {STORE_FIX}', id="var-log"),
    # -- cold_store and cold_after_days
    pytest.param(site_with("cold_store", "mail-archive-cold"),
                 f'archive.cold_store: "mail-archive-cold" is not an absolute path; {COLD_FIX}', id="cold-relative"),
    pytest.param(site_with("cold_store", "/tmp/cold"),
                 f'archive.cold_store: "/tmp/cold" is inside /tmp, the folder of temporary files, emptied at boot; '
                 f"{COLD_FIX}", id="cold-tmp"),
    pytest.param(site_with("cold_store", "/srv/mail-archive"),
                 f'archive.cold_store: "/srv/mail-archive" is archive.store ("/srv/mail-archive") as well; {TIERS_FIX}',
                 id="cold-is-hot"),
    pytest.param(site_with("cold_store", "/srv/mail-archive/cold"),
                 f'archive.cold_store: "/srv/mail-archive/cold" is inside archive.store ("/srv/mail-archive"); '
                 f"{TIERS_FIX}", id="cold-inside-hot"),
    pytest.param(dict(MINIMAL_SITE, archive={**ARCHIVE, "store": "/data/archive/hot", "cold_store": "/data/archive"}),
                 f'archive.cold_store: "/data/archive" contains archive.store ("/data/archive/hot"); {TIERS_FIX}',
                 id="hot-inside-cold"),
    pytest.param(site_with("cold_store", DELETE),
                 "archive.cold_after_days: is only used with cold_store; remove it, or set cold_store to the folder "
                 "old messages move to", id="cold-days-without-cold-store"),
    pytest.param(site_with("cold_after_days", DELETE),
                 "archive.cold_after_days: is required; give the age in days at which messages move to cold_store, 1 "
                 "to 36500, e.g. cold_after_days: 90", id="cold-store-without-days"),
    pytest.param(site_with("cold_after_days", 0),
                 "archive.cold_after_days: 0 is out of range; use a whole number of days from 1 to 36500, e.g. 90",
                 id="cold-days-zero"),
    pytest.param(site_with("cold_after_days", 36501),
                 "archive.cold_after_days: 36501 is out of range; use a whole number of days from 1 to 36500, e.g. 90",
                 id="cold-days-too-many"),
    pytest.param(site_with("cold_after_days", "90d"),
                 'archive.cold_after_days: "90d" is not a whole number; use a whole number of days from 1 to 36500, '
                 "e.g. 90", id="cold-days-text"),
    pytest.param(site_with("cold_after_days", True),
                 "archive.cold_after_days: true is not a whole number; use a whole number of days from 1 to 36500, "
                 "e.g. 90", id="cold-days-bool"),
    # -- on_failure and checkpoint_minutes
    pytest.param(site_with("on_failure", "drop"), f'archive.on_failure: "drop" is not a choice; {ON_FAILURE_FIX}',
                 id="on-failure"),
    pytest.param(site_with("on_failure", "Defer"), f'archive.on_failure: "Defer" is not a choice; {ON_FAILURE_FIX}',
                 id="on-failure-case"),
    pytest.param(site_with("on_failure", False), f"archive.on_failure: false is not a choice; {ON_FAILURE_FIX}",
                 id="on-failure-bool"),
    pytest.param(site_with("checkpoint_minutes", 0),
                 "archive.checkpoint_minutes: 0 is out of range; use a whole number of minutes from 1 to 1440, e.g. 60",
                 id="checkpoint-zero"),
    pytest.param(site_with("checkpoint_minutes", 1441),
                 "archive.checkpoint_minutes: 1441 is out of range; use a whole number of minutes from 1 to 1440, "
                 "e.g. 60", id="checkpoint-over-a-day"),
    pytest.param(site_with("checkpoint_minutes", 1.5),
                 "archive.checkpoint_minutes: 1.5 is not a whole number; use a whole number of minutes from 1 to "
                 "1440, e.g. 60", id="checkpoint-fraction"),
    # -- retention rules
    pytest.param(site_with("retention", {"days": 3650}),
                 "archive.retention: expected a list, got a mapping; list rules, e.g. retention: [{domains: "
                 "[broker.example], days: 3650}, {days: 2557}]", id="retention-not-a-list"),
    pytest.param(rules(*[{"domains": [f"d{n}.example"], "days": 10} for n in range(257)]),
                 "archive.retention: lists 257 rules; list at most 256; put the domains that share a retention into "
                 "one rule", id="too-many-rules"),
    pytest.param(rules("3650"),
                 'archive.retention[0]: expected a mapping, got "3650"; write it as - {domains: [broker.example], '
                 "direction: outbound, days: 3650}", id="rule-not-a-mapping"),
    pytest.param(site_with("retention[0].keep", True),
                 "archive.retention[0].keep: unknown key; allowed keys are domains, direction, days",
                 id="unknown-rule-key"),
    pytest.param(site_with("retention[0].days", DELETE),
                 "archive.retention[0].days: is required; give the days to keep the messages this rule matches, 1 to "
                 "36500, e.g. days: 3650", id="days-missing"),
    pytest.param(site_with("retention[0].days", 0), f"archive.retention[0].days: 0 is out of range; {DAYS_FIX}",
                 id="days-zero"),
    pytest.param(site_with("retention[0].days", 36501),
                 f"archive.retention[0].days: 36501 is out of range; {DAYS_FIX}", id="days-too-many"),
    pytest.param(site_with("retention[0].days", "7y"),
                 f'archive.retention[0].days: "7y" is not a whole number; {DAYS_FIX}', id="days-text"),
    pytest.param(site_with("retention[0].direction", "sent"),
                 f'archive.retention[0].direction: "sent" is not a direction; {DIRECTION_FIX}', id="direction"),
    pytest.param(site_with("retention[0].direction", ["inbound", "outbound"]),
                 f"archive.retention[0].direction: a list is not a direction; {DIRECTION_FIX}", id="direction-list"),
    pytest.param(site_with("retention[0].domains", []),
                 f"archive.retention[0].domains: the list is empty; {DOMAIN_FIX}", id="domains-empty"),
    pytest.param(site_with("retention[0].domains", "broker.example"),
                 f'archive.retention[0].domains: expected a list of domains, got "broker.example"; {DOMAIN_FIX}',
                 id="domains-not-a-list"),
    pytest.param(site_with("retention[0].domains", ["*"]),
                 'archive.retention[0].domains[0]: "*" is every domain; leave domains out for a rule that takes every '
                 "domain", id="domains-star"),
    pytest.param(site_with("retention[0].domains", ["broker.*"]),
                 f'archive.retention[0].domains[0]: "broker.*" is not a domain name or wildcard; {DOMAIN_FIX}',
                 id="domain-syntax"),
    pytest.param(site_with("retention[0].domains", ["broker"]),
                 f'archive.retention[0].domains[0]: "broker" is not a domain name or wildcard; {DOMAIN_FIX}',
                 id="domain-one-label"),
    pytest.param(site_with("retention[0].domains", ["file:brokers.txt"]),
                 f'archive.retention[0].domains[0]: "file:brokers.txt" is not a domain name or wildcard; {DOMAIN_FIX}',
                 id="no-list-files"),
    pytest.param(site_with("retention[0].domains", [7]),
                 f"archive.retention[0].domains[0]: expected a domain name, got 7; {DOMAIN_FIX}", id="domain-number"),
    pytest.param(site_with("retention[0].domains", ["broker.example", "Broker.example"]),
                 'archive.retention[0].domains[1]: "Broker.example" is listed twice in this rule (also at '
                 "archive.retention[0].domains[0]); list each domain once", id="domain-twice"),
    pytest.param(site_with("retention[0].domains", [f"d{n}.example" for n in range(257)]),
                 "archive.retention[0].domains: lists 257 domains; list at most 256; a wildcard (*.broker.example) "
                 "takes every name below a domain", id="too-many-domains"),
    # -- rules an earlier one hides
    pytest.param(rules(CATCH_ALL, BROKER),
                 "archive.retention[1]: never applies: archive.retention[0] before it has neither domains nor "
                 "direction, so it takes every message; remove this rule, or move it above archive.retention[0] (a "
                 "rule without domains and direction goes last)", id="catch-all-not-last"),
    pytest.param(rules(CATCH_ALL, {"days": 10}),
                 "archive.retention[1]: never applies: archive.retention[0] before it has neither domains nor "
                 "direction, so it takes every message; remove this rule, or move it above archive.retention[0] (a "
                 "rule without domains and direction goes last)", id="two-catch-alls"),
    pytest.param(rules({"direction": "outbound", "days": 10}, BROKER),
                 "archive.retention[1]: never applies: archive.retention[0] before it takes every outbound message; "
                 "remove this rule, or move it above archive.retention[0]", id="hidden-by-a-direction"),
    pytest.param(rules({"domains": ["*.example"], "days": 10}, {"domains": ["broker.example"], "days": 20}),
                 "archive.retention[1]: never applies: every message it matches is taken by archive.retention[0] "
                 "before it; remove this rule, or move it above archive.retention[0]", id="hidden-by-a-wildcard"),
    pytest.param(rules({"domains": ["*.broker.example"], "direction": "outbound", "days": 10},
                       {"domains": ["shop.broker.example", "partner.example"], "direction": "outbound", "days": 20}),
                 'archive.retention[1].domains[0]: "shop.broker.example" is already taken by "*.broker.example" in '
                 "archive.retention[0], so this rule never applies to it; move this rule above archive.retention[0], "
                 "or remove the domain", id="one-domain-hidden"),
    pytest.param(rules({"domains": ["a.example"], "days": 10}, {"domains": ["b.example"], "days": 20},
                       {"domains": ["b.example", "a.example"], "direction": "inbound", "days": 30}),
                 "archive.retention[2]: never applies: every message it matches is taken by archive.retention[0], "
                 "archive.retention[1] before it; remove this rule, or move it above archive.retention[0]",
                 id="hidden-by-two-rules"),
]


@pytest.mark.parametrize(("data", "message"), BAD_ARCHIVE)
def test_each_archive_mistake_gives_one_located_message(site_dir: Path, data: dict, message: str) -> None:
    assert errors_of(site_dir, data) == [message]


def test_every_rule_after_the_catch_all_is_named(site_dir: Path) -> None:
    errors = errors_of(site_dir, rules(BROKER, CATCH_ALL, {"direction": "inbound", "days": 1}, {"days": 5}))
    assert [line.split(": never applies: ")[0] for line in errors] == ["archive.retention[2]", "archive.retention[3]"]
    assert all("archive.retention[1] before it has neither domains nor direction" in line for line in errors)


def test_archive_problems_are_reported_in_file_order(site_dir: Path) -> None:
    data = site_with("checkpoint_minutes", 0)
    data["archive"] |= {"on_failure": "drop", "store": "/tmp/a"}
    data["archive"]["retention"][0]["days"] = 0
    # The file has store, cold_store, cold_after_days, retention, checkpoint_minutes, on_failure; the checks run in
    # another order.
    assert [line.split(":")[0] for line in errors_of(site_dir, data)] == [
        "archive.store", "archive.retention[0].days", "archive.checkpoint_minutes", "archive.on_failure"]


# -- hostile strings ------------------------------------------------------------------------------------------

HOSTILE = [
    pytest.param("store", "/srv/mail-archive\nExecStartPre=/bin/sh -c id",
                 'archive.store: "/srv/mail-archive\\nExecStartPre=/bin/sh -c id" contains a line break (U+000A); ',
                 id="store-line-break"),
    pytest.param("cold_store", "/srv/cold\u2028x", 'archive.cold_store: "/srv/cold\\u2028x" contains a line separator '
                 "(U+2028); ", id="cold-store-line-separator"),
    pytest.param("store", "/srv/a\x00", 'archive.store: "/srv/a\\u0000" contains a NUL character (U+0000); ',
                 id="store-nul"),
    pytest.param("store", " /srv/a", 'archive.store: " /srv/a" has whitespace at its start or end; ',
                 id="store-whitespace"),
    pytest.param("store", "/srv/" + "a" * 5000, 'archive.store: "/srv/', id="store-too-long"),
    pytest.param("on_failure", "defer\r\n", 'archive.on_failure: "defer\\r\\n" is not a choice; ', id="on-failure"),
    pytest.param("retention[0].direction", "outbound\t", 'archive.retention[0].direction: "outbound\\t" is not a '
                 "direction; ", id="direction"),
    pytest.param("retention[0].domains", ["broker.example\nx"], 'archive.retention[0].domains[0]: "broker.example\\nx" '
                 "contains a line break (U+000A); ", id="domain"),
]


@pytest.mark.parametrize(("path", "value", "start"), HOSTILE)
def test_hostile_strings_are_refused_on_one_line(site_dir: Path, path: str, value: object, start: str) -> None:
    errors = errors_of(site_dir, site_with(path, value))
    assert len(errors) == 1 and errors[0].startswith(start), errors
    assert not any(is_unsafe_char(char) for char in errors[0])


def test_the_readme_shows_the_tested_archive_section() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(archive:\n.*?)```", readme, re.DOTALL)
    assert len(blocks) == 1, "README.md should show one ```yaml block starting with archive:"
    assert yaml.safe_load(blocks[0]) == {"archive": yaml.safe_load(ARCHIVE_SITE)["archive"]}
