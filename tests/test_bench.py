"""scripts/bench without containers: its arithmetic (CPU per message, medians, ratio), the site it deploys, which
log lines it counts, and what it prints."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conftest import PROJECT_DIR
from mailappliance.site import load_site


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    path = PROJECT_DIR / "scripts" / "bench"
    loader = importlib.machinery.SourceFileLoader("bench", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("bench", loader))
    # Its dataclasses look their module up in sys.modules while they are made.
    sys.modules["bench"] = module
    loader.exec_module(module)
    return module


def measurement(bench: ModuleType, load: str, target: str, run: int, delivered: int, seconds: float,
                **extra: object) -> object:
    m = bench.Measurement(load=load, target=target, run=run, sent=delivered, accepted=delivered, delivered=delivered,
                          accept_seconds=seconds, deliver_seconds=seconds, cpu_ms={"total": 10.0 * run})
    for key, value in extra.items():
        setattr(m, key, value)
    return m


def test_cpu_per_message_counts_what_no_group_claims_as_rest(bench: ModuleType) -> None:
    before = dict.fromkeys((*bench.GROUP_NAMES, "total"), 0.0)
    after = dict(before, postfix=2.0, rspamd=1.0, total=4.0)
    cpu = bench.cpu_per_message(before, after, 100)
    assert cpu["postfix"] == 20.0 and cpu["rspamd"] == 10.0 and cpu["total"] == 40.0
    assert cpu["rest"] == 10.0


def test_summary_takes_medians_and_the_ratio_of_delivered_rates(bench: ModuleType) -> None:
    runs = [measurement(bench, "inbound", "raw", run, 1000, seconds) for run, seconds in ((1, 10), (2, 20), (3, 5))]
    runs += [measurement(bench, "inbound", "appliance", run, 100, 4.0) for run in (1, 2, 3)]
    rows = {row["target"]: row for row in bench.summarize(runs)}
    assert rows["raw"]["delivered_rate"] == 100.0
    assert (rows["raw"]["delivered_rate_min"], rows["raw"]["delivered_rate_max"]) == (50.0, 200.0)
    assert rows["appliance"]["delivered_rate"] == 25.0
    assert rows["appliance"]["ratio"] == 0.25
    assert rows["appliance"]["per_day"] == 25 * 86400
    assert rows["appliance"]["cpu_ms"]["total"] == 20.0


def test_goals_are_printed_with_every_problem(bench: ModuleType) -> None:
    runs = [measurement(bench, "inbound", "raw", 1, 100, 1.0),
            measurement(bench, "inbound", "appliance", 1, 50, 1.0, answers={"451 4.7.1 try again": 3}),
            measurement(bench, "silent", "appliance", 1, 45, 1.0, not_delivered={"deferred": 5})]
    text = bench.format_goals(bench.summarize(runs))
    assert "inbound, many mailboxes: appliance/raw 50% (goal >= 40%)" in text
    assert "upstream silent vs connected (appliance, inbound): -10%" in text
    assert "4,320,000 mails/day" in text
    assert "3 x 451 4.7.1 try again" in text and "5 x deferred" in text
    table = bench.format_table(bench.summarize(runs))
    assert "inbound, many mailboxes" in table and "50%" in table


def test_channel_goal_and_projection_are_printed(bench: ModuleType) -> None:
    runs = [measurement(bench, "channel", "raw", 1, 400, 1.0), measurement(bench, "channel", "appliance", 1, 340, 1.0)]
    text = bench.format_goals(bench.summarize(runs))
    assert "  channel (bulk, DKIM): appliance/raw 85% (goal >= 80%)" in text
    assert ("  projection, channel (bulk, DKIM): 29,376,000 mails/day at 340.0 msg/s (target 10,000,000/day"
            in text)
    # Without the inbound load there is no inbound projection, and no channel line without the channel load.
    assert "  projection: " not in text
    inbound = bench.format_goals(bench.summarize([measurement(bench, "inbound", "appliance", 1, 50, 1.0)]))
    assert "channel" not in inbound


def test_bench_site_is_a_valid_site_with_the_channel_and_its_account(bench: ModuleType, tmp_path: Path) -> None:
    mailboxes = [f"user{number:03d}@bench.test" for number in (1, 2)] + ["store@bench.test"]
    (tmp_path / "eicar.hdb").write_text("44d88612fea8a8f36de82e1278abb02f:68:Local.EICAR-Test-File\n")
    (tmp_path / "site.yml").write_text(bench.site_text(mailboxes, "10.213.77.10", dns_field=True))
    site = load_site(tmp_path / "site.yml")
    [channel] = site.outbound.channels
    assert (channel.name, channel.submission_port, channel.dkim_selector, channel.signing_domain) == (
        "bulk", bench.LOADS["channel"].port, "bulk", "bench.test")
    [account] = site.outbound.accounts
    assert (account.name, account.channel) == (bench.LOADS["channel"].login, "bulk")
    assert account.senders == (bench.LOADS["channel"].sender,)
    # The channel's route is direct MX delivery, which for sink.test is the sink; staff keeps the implied one.
    assert [(route.channels, route.carriers) for route in site.outbound.routes] == [
        (("bulk",), ("direct",)), (("staff",), ("direct",))]
    assert bench.LOADS["outbound"].login in [mailbox.address for mailbox in site.mailboxes]


def test_deliveries_are_counted_from_the_instance_that_sends_the_load(bench: ModuleType) -> None:
    agents = {(load, target): bench.delivery_agents(bench.LOADS[load], target)
              for load in bench.LOADS for target in bench.TARGETS}
    assert agents[("inbound", "raw")] == agents[("inbound", "appliance")] == "postfix/(lmtp|local)"
    # Raw relays every outbound load with its smtp client; the appliance's routes name its transports route<N>.
    assert agents[("outbound", "raw")] == agents[("channel", "raw")] == "postfix/(route[0-9]+/)?smtp"
    assert agents[("outbound", "appliance")] == "postfix/(route[0-9]+/)?smtp"
    assert agents[("channel", "appliance")] == "postfix-bulk/(route[0-9]+/)?smtp"
    # What the appliance's journal holds (master.cf: -o syslog_name=postfix-bulk/route1), and what it must not take.
    pattern = re.compile(rf" {agents[('channel', 'appliance')]}\[[0-9]+\]: .* status=")
    assert pattern.search("mail postfix-bulk/route1/smtp[26544]: 3C98: to=<a@sink.test>, status=sent (250 Ok)")
    assert not pattern.search("mail postfix/route1/smtp[26544]: 3C98: to=<a@sink.test>, status=sent (250 Ok)")
    assert not pattern.search("mail postfix-bulk/submission/smtpd[24703]: warning: status=x")


def test_dkim_signatures_are_counted_from_rspamd_log_and_missing_ones_are_problems(bench: ModuleType) -> None:
    assert bench.LOADS["channel"].dkim == "bench.test:s=bulk"
    pattern = re.compile(bench.dkim_signed_pattern(bench.LOADS["channel"].dkim))
    line = ("rspamd_task_write_log: id: <1@bench.test>, user: bulk, (default: F (no action): [0.00/15.00] "
            "[ARC_NA(0.00){{}},DKIM_SIGNED(0.00){{{}}},FROM_EQ_ENVFROM(0.00){{}}]), len: 4608")
    assert pattern.search(line.format("bench.test:s=bulk;"))
    assert pattern.search(line.format("bench.test:s=mail;bench.test:s=bulk;"))
    assert not pattern.search(line.format("bench.test:s=mail;"))
    assert not pattern.search(line.format("xbench.test:s=bulk;"))
    runs = [measurement(bench, "channel", "raw", 1, 100, 1.0),
            measurement(bench, "channel", "appliance", 1, 100, 1.0, unsigned=7)]
    assert "  channel (bulk, DKIM), appliance: 7 x not DKIM-signed with bench.test:s=bulk" in bench.format_goals(
        bench.summarize(runs))


def test_settings_come_from_the_environment(bench: ModuleType) -> None:
    quick = bench.Settings.from_environment({"BENCH_QUICK": "1"})
    assert (quick.runs, quick.seconds) == (1, 8)
    full = bench.Settings.from_environment({"BENCH_RUNS": "5", "BENCH_LOADS": "inbound,silent"})
    assert (full.runs, full.seconds, full.loads) == (5, 30, ("inbound", "silent"))
    assert bench.Settings.from_environment({"BENCH_LOADS": "channel", "BENCH_QUICK": "1"}).loads == ("channel",)
    assert "channel" in bench.Settings.from_environment({}).loads
    with pytest.raises(bench.BenchError, match="BENCH_LOADS: unknown load nope"):
        bench.Settings.from_environment({"BENCH_LOADS": "nope"})
    with pytest.raises(bench.BenchError, match="BENCH_RUNS='x': not a whole number"):
        bench.Settings.from_environment({"BENCH_RUNS": "x"})
