"""scripts/bench without containers: its arithmetic (CPU per message, medians, ratio) and what it prints."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from types import ModuleType

import pytest

from conftest import PROJECT_DIR


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


def test_settings_come_from_the_environment(bench: ModuleType) -> None:
    quick = bench.Settings.from_environment({"BENCH_QUICK": "1"})
    assert (quick.runs, quick.seconds) == (1, 8)
    full = bench.Settings.from_environment({"BENCH_RUNS": "5", "BENCH_LOADS": "inbound,silent"})
    assert (full.runs, full.seconds, full.loads) == (5, 30, ("inbound", "silent"))
    with pytest.raises(bench.BenchError, match="BENCH_LOADS: unknown load nope"):
        bench.Settings.from_environment({"BENCH_LOADS": "nope"})
    with pytest.raises(bench.BenchError, match="BENCH_RUNS='x': not a whole number"):
        bench.Settings.from_environment({"BENCH_RUNS": "x"})
