"""Search time on a generated index of 20,000 messages (the bench does 100,000): printed, not asserted."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from mailappliance.archive.corpus import generate_corpus
from mailappliance.archive.search import Criteria, search
from mailappliance.archive.store import stats
from test_archive_support import NOW, make_archive

N = 20_000
QUERIES = {
    "text, two words": Criteria(text="invoice refund", limit=100),
    "text, three words, every hit": Criteria(text="warehouse compliance audit"),
    "recipient (envelope, Bcc too)": Criteria(recipient="staff7@acme.example", limit=100),
    "sender domain and text": Criteria(sender="@bank.example", text="payment", limit=100),
    "subject word and date range": Criteria(subject="budget", since=NOW - timedelta(days=90), until=NOW, limit=100),
}


def test_search_time_on_a_generated_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with make_archive(tmp_path) as archive:
        started, cpu = time.perf_counter(), time.process_time()
        generate_corpus(archive, N, seed=11, end=NOW)
        built, cpu = time.perf_counter() - started, time.process_time() - cpu
        figures = stats(archive)
        assert figures["records"] == N
        lines = [f"generated and ingested {N} messages in {built:.1f} s ({cpu:.1f} s CPU); stored/received "
                 f"{figures['stored_per_received']} (files), database {figures['bytes_database'] / 1e6:.1f} MB for "
                 f"{figures['bytes_received'] / 1e6:.1f} MB received"]
        for name, criteria in QUERIES.items():
            search(archive, criteria)
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                found = search(archive, criteria)
                runs.append(time.perf_counter() - started)
            assert found, name
            lines.append(f"search {name}: {len(found)} hits, median {sorted(runs)[2] * 1000:.1f} ms")
    with capsys.disabled():
        print("\n" + "\n".join(f"  archive timing: {line}" for line in lines))
