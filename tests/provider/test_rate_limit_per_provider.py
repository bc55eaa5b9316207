"""Each provider's rate budget is its own: two names, one limit each, and spending through one
never spends the other's, nor does a 429 met with one hold the other."""

from __future__ import annotations

import asyncio
import time

from notification.config import Settings
from notification.provider.rate_limit import RateBudget
from tests.delivery.observe import rows

RATE = 40.0
SPAN_S = 2.5


async def _spend(budget: RateBudget, until: float, spent: list[float]) -> None:
    while time.monotonic() < until:
        await budget.admit(1)
        spent.append(time.monotonic())


async def test_two_providers_each_get_their_whole_limit_at_once(settings: Settings) -> None:
    budgets = [RateBudget(name, RATE, settings.psycopg_conninfo) for name in ("first", "second")]
    spent: list[list[float]] = [[], []]
    started = time.monotonic()
    try:
        await asyncio.gather(
            *(_spend(budget, started + SPAN_S, spent[i]) for i, budget in enumerate(budgets) for _ in range(20))
        )
    finally:
        for budget in budgets:
            await budget.aclose()
    # One shared row would give each about half the limit. Counted from each one's first send: the
    # connection to the database comes first, and takes its time on a loaded machine.
    for times in spent:
        assert (len(times) - 1) / (max(times) - min(times)) >= 0.8 * RATE
    found = await rows(settings.psycopg_conninfo, "SELECT provider FROM provider_rate_budget ORDER BY provider")
    assert [name for (name,) in found] == ["default", "first", "second"]


async def test_a_hold_asked_by_one_provider_does_not_hold_another(settings: Settings) -> None:
    held = RateBudget("first", None, settings.psycopg_conninfo)
    other = RateBudget("second", None, settings.psycopg_conninfo)
    held_elsewhere = RateBudget("first", None, settings.psycopg_conninfo)
    try:
        await held.hold_everyone(5.0)
        await other.refresh_hold()
        await held_elsewhere.refresh_hold()
        assert other.hold_s == 0
        assert held_elsewhere.hold_s > 4
        started = time.monotonic()
        await other.admit(1)
        assert time.monotonic() - started < 0.5
    finally:
        for budget in (held, other, held_elsewhere):
            await budget.aclose()
