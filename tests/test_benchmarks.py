"""Every benchmark runs to its end at a tiny size, so that none can break unnoticed: its ``main``
in this process, on a clone of the test template instead of a freshly migrated database, and its
figures printed. The sizes say nothing about speed; the README's figures come from full runs.

Run here: bench/bulk_import.py, bench/console.py, bench/counter_writes.py, bench/delivery.py,
bench/facets.py, bench/partitioning.py, bench/planning_consent.py, bench/preview.py, bench/rate_limit.py,
bench/receipts.py, bench/stats.py, bench/webhooks.py;
``test_every_benchmark_has_a_smoke_run`` keeps the list whole."""

from __future__ import annotations

import contextlib
import importlib.util
import re
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

from notification.config import Settings, load_settings

BENCH = Path(__file__).resolve().parents[1] / "bench"

# Each benchmark with tiny arguments, and lines of figures its output must hold; a benchmark run
# several ways has one entry per way, named "<benchmark> <variant>".
RUNS: dict[str, tuple[list[str], list[str]]] = {
    "bulk_import": (["--clients", "200", "--chunk", "100", "--concurrency", "2"], [r"clients/s"]),
    "console": (
        ["--messages", "1000", "--mailings", "3", "--clients", "500", "--repeat", "1", "--import-rows", "100"],
        [r"GET /admin", r"import"],
    ),
    "counter_writes": (["--messages", "400", "--writers", "2", "--rounds", "1"], [r"statements/s"]),
    # 18 of the 20 tags (the hash puts tag-0 and tag-10 on the clients left without one) and the
    # empty tag; the benchmark itself checks its facets against a scan.
    "facets": (
        ["--clients", "2000", "--tags", "20", "--runs", "2"],
        [r"GET /clients/facets", r"19 tags, 100 operator codes"],
    ),
    # Each run of the delivery benchmark starts a worker, the API and the fakes, so its ways are
    # paired: every option still runs, in two runs rather than four.
    "delivery smpp personalised": (
        ["--clients", "60", "--latency-ms", "10", "--smpp", "--personalised"],
        [
            r"providers\s+smpp \(fake SMSC, window 50\)",
            r"sent\s+60\n",
            r"messages per provider\s+smsc 60",
            r"text\s+\{\{ name",
            r"messages by parts\s+1 part\(s\) 60",
            r"render \+ measure\s+[\d.]+ \+ [\d.]+ us",
        ],
    ),
    "delivery two-providers two-workers unpersonalised": (
        ["--clients", "100", "--latency-ms", "0", "--two-providers", "--workers", "2", "--unpersonalised"],
        [
            r"worker processes\s+2",
            r"sent\s+100\n",
            r"messages/s",
            r"worker 1 [\d.]+, worker 2 [\d.]+",
            r"messages per provider\s+first 50, second 50",
            r"text\s+Анна Петрова, ваш заказ A-50000 готов",
        ],
    ),
    "partitioning": (
        ["--messages", "2000", "--mailings", "10", "--clients", "500", "--per-partition", "5", "--repeat", "1"],
        [r"claim", r"partition"],
    ),
    "planning_consent": (
        ["--clients", "2000", "--suppressed", "200", "--rounds", "1"],
        [
            r"round 1 without\s+[\d.]+ s, 2,000 messages, 0 left out",
            r"round 1 with\s+[\d.]+ s, 1,800 messages, 200 left out",
        ],
    ),
    "preview": (["--clients", "300", "--runs", "1"], [r"ms"]),
    "rate_limit": (["--limit", "40", "--seconds", "1", "--latency-ms", "0"], [r"busiest 1 s window\s+\d+ parts"]),
    "webhooks": (
        ["--events", "100", "--concurrency", "4"],
        [
            r"an endpoint wanting it\s+[\d.]+ ms\s+\(100 outbox rows\)",
            r"webhook triggers off",
            r"webhook events delivered\s+100 in",
        ],
    ),
    "receipts": (["--messages", "300"], [r"decided 300, answered with an error 0", r"SMPP receipts/s [\d,]+"]),
    "stats": (
        ["--messages", "2000", "--mailings", "5", "--clients", "500", "--repeat", "1"],
        [r"EXPLAIN \(ANALYZE, BUFFERS\)", r"all_mailing_counts\n\s+execution", r"GET /metrics\s+min"],
    ),
}


def test_every_benchmark_has_a_smoke_run() -> None:
    assert sorted({name.split()[0] for name in RUNS}) == sorted(path.stem for path in BENCH.glob("[!_]*.py"))


def _load(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # The benchmarks import their siblings (_harness, stats) by name, as when run as scripts.
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # where dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_benchmark_runs_to_its_end_at_a_tiny_size(
    name: str, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments, figures = RUNS[name]
    name = name.split(maxsplit=1)[0]
    benchmark = _load(name, monkeypatch)

    @contextlib.contextmanager
    def cloned_database(server_url: str | None) -> Iterator[Settings]:
        yield replace(load_settings({}), database_url=database_url)

    monkeypatch.setattr(benchmark, "throwaway_database", cloned_database)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *arguments])
    benchmark.main()
    printed = capsys.readouterr()
    output = printed.out + printed.err
    missing = [figure for figure in figures if not re.search(figure, output)]
    assert missing == [], output
