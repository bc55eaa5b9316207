"""The shared rate budget against a real PostgreSQL: two budgets stand for two worker processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from notification.config import Settings
from notification.provider.rate_limit import RateBudget


def busiest_second(times: Sequence[float], weights: Sequence[int] | None = None) -> int:
    """The most weight in any one-second window [t, t + 1) that starts at an event."""
    events = sorted(zip(times, weights or [1] * len(times), strict=True))
    busiest, inside, first = 0, 0, 0
    for t, weight in events:
        inside += weight
        while events[first][0] <= t - 1:
            inside -= events[first][1]
            first += 1
        busiest = max(busiest, inside)
    return busiest


def test_busiest_second_counts_a_sliding_window() -> None:
    assert busiest_second([0.0, 0.5, 0.99, 1.0, 1.2]) == 4
    assert busiest_second([0.0, 2.0, 4.0]) == 1
    assert busiest_second([0.0, 0.1], [3, 2]) == 5


async def _spend(budget: RateBudget, parts: int, until: float, spent: list[float]) -> None:
    while time.monotonic() < until:
        await budget.admit(parts)
        spent.append(time.monotonic())


@pytest.mark.parametrize("parts", [1, 3])
async def test_two_processes_together_keep_to_the_rate(settings: Settings, parts: int) -> None:
    rate = 120.0
    budgets = [RateBudget("default", rate, settings.psycopg_conninfo) for _ in range(2)]
    spent: list[list[float]] = [[], []]
    started = time.monotonic()
    until = started + 3
    try:
        # Many senders per process, far more eager than the budget.
        await asyncio.gather(
            *(_spend(budget, parts, until, spent[i]) for i, budget in enumerate(budgets) for _ in range(30))
        )
    finally:
        for budget in budgets:
            await budget.aclose()

    every = [t for times in spent for t in times]
    sent_parts = len(every) * parts
    block = max(budget.block for budget in budgets)
    assert busiest_second(every, [parts] * len(every)) <= rate + 2 * max(block, parts)
    # Senders still queued at the deadline finish after it: the mean is over the whole span.
    mean = sent_parts / (max(every) - started)
    assert 0.9 * rate <= mean <= 1.05 * rate
    assert spent[0], "both processes get their share"
    assert spent[1], "both processes get their share"


async def test_a_hold_written_by_one_process_holds_the_other(settings: Settings) -> None:
    writer = RateBudget("default", None, settings.psycopg_conninfo)
    reader = RateBudget("default", None, settings.psycopg_conninfo)
    try:
        await writer.hold_everyone(1.0)
        await reader.refresh_hold()
        assert 0.5 < reader.hold_s <= 1.0
        started = time.monotonic()
        await reader.admit(1)
        assert time.monotonic() - started >= reader.hold_s
        assert 0.5 < time.monotonic() - started <= 1.2
    finally:
        await writer.aclose()
        await reader.aclose()


async def test_without_a_limit_admitting_never_touches_the_database() -> None:
    budget = RateBudget("default", None, "postgresql://nobody@127.0.0.1:1/nothing")
    started = time.monotonic()
    for _ in range(10_000):
        await budget.admit(5)
    assert time.monotonic() - started < 1
    await budget.aclose()
