"""The provider rate limit with two worker processes and the fake provider over HTTP, judged by
the fake's own arrival times; and a 429 that holds every worker, not only the one that got it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.config import Settings
from notification.dev.fake_provider import (
    Arrival,
    FakeProviderOptions,
    FakeProviderState,
    RunningFakeProvider,
    create_fake_provider_app,
    get_fake_provider_state,
    serve_fake_provider,
)
from tests.api import Api, add_clients, create_mailing, mailing_stats, utc_now
from tests.provider.test_rate_limit import busiest_second
from tests.servers import serve_in_thread
from tests.waiting import wait_for
from tests.workers import WorkerProcess

# 161 GSM-7 characters: two parts per message.
TWO_PARTS = "x" * 161


@contextmanager
def _fake_in_a_thread(latency_ms: float = 50) -> Iterator[tuple[FakeProviderState, str]]:
    """A fake provider on a thread and event loop of its own, so that its arrival times are taken as they
    happen whatever the test's loop is doing; yields its record and the base URL a worker is given."""
    provider_app = create_fake_provider_app(FakeProviderOptions(latency_ms=latency_ms))
    with serve_in_thread(provider_app) as url:
        yield get_fake_provider_state(provider_app), f"{url}/v1"


def _at(arrival: Arrival) -> float:
    """When the request arrived, in seconds, as the budget's arithmetic takes it."""
    return arrival.arrived_at.timestamp()


def _sent_by(worker: WorkerProcess) -> int:
    return sum(1 for line in worker.log_lines() if '"provider answered"' in line)


async def test_two_workers_together_keep_to_the_rate_limit_in_sms_parts(
    client: Api, db: AsyncSession, settings: Settings, tmp_path: Path
) -> None:
    limit = 40
    await add_clients(client, 120)
    tuning = {"PROVIDER_RATE_LIMIT": str(limit), "SEND_BATCH_SIZE": "20", "WORKER_CONCURRENCY": "4"}
    # The fake on a thread of its own: its arrival times are taken as the requests come, whatever
    # the test's loop and the machine's other processes are doing.
    with _fake_in_a_thread(latency_ms=0) as (fake, url):
        workers = [WorkerProcess(settings, url, tmp_path / f"{name}.log", **tuning) for name in ("first", "second")]
        try:
            mailing = await create_mailing(client, text=TWO_PARTS)
            assert mailing["parts"] == 2

            async def sent() -> int:
                count = await db.scalar(text("SELECT count(*) FROM messages WHERE status = 'sent'"))
                await db.rollback()
                return int(count or 0)

            await wait_for(sent, lambda n: n == 120, timeout_s=60, interval_s=0.5)
        finally:
            for worker in workers:
                worker.stop()
        arrivals = [_at(a) for a in fake.arrivals()]

    stats = await mailing_stats(client, mailing["id"])
    assert stats["parts_sent"] == 240
    assert len(arrivals) == 120
    parts = [2] * len(arrivals)
    # The limit and a block for each worker (a block is never less than a message: two parts
    # here), and a tenth of the limit for timestamps taken on a busy machine; without the limit
    # the two workers send hundreds a second.
    assert busiest_second(arrivals, parts) <= 1.1 * limit + 2 * 2
    mean = sum(parts) / (max(arrivals) - min(arrivals))
    assert 0.85 * limit <= mean <= 1.1 * limit
    assert all(_sent_by(worker) > 0 for worker in workers), "both workers sent their share"


async def test_a_429_holds_every_worker_for_its_retry_after(
    client: Api, db: AsyncSession, settings: Settings, fake_provider: RunningFakeProvider, tmp_path: Path
) -> None:
    """Each worker talks to a fake of its own, so that only the first one ever meets the 429:
    the second can learn of it only through the database."""
    await add_clients(client, 1500)
    budget_before = (await db.execute(text("SELECT tokens, refilled_at FROM provider_rate_budget"))).one()
    await db.rollback()
    tuning = {"SEND_BATCH_SIZE": "25", "PROVIDER_CONCURRENCY": "5", "WORKER_CONCURRENCY": "2"}
    async with serve_fake_provider() as other_fake:
        # About 100 sends a second per worker: the mailing lasts long enough for both to be at it.
        for fake in (fake_provider, other_fake):
            fake.set_options(latency_ms=50)
        workers = [
            WorkerProcess(settings, fake_provider.base_url, tmp_path / "first.log", **tuning),
            WorkerProcess(settings, other_fake.base_url, tmp_path / "second.log", **tuning),
        ]
        try:
            mailing = await create_mailing(client, end_at=(utc_now() + dt.timedelta(minutes=5)).isoformat())

            async def both_sending() -> bool:
                return bool(fake_provider.arrivals()) and bool(other_fake.arrivals())

            await wait_for(both_sending, lambda yes: yes)
            fake_provider.set_options(rate_limit_rate=1.0, retry_after_s=2)
            first_429 = await wait_for(
                lambda: _first_429(fake_provider), lambda at: at is not None, timeout_s=10, interval_s=0.005
            )
            fake_provider.set_options(rate_limit_rate=0.0)
            assert first_429 is not None

            stats = await wait_for(
                lambda: mailing_stats(client, mailing["id"]), lambda s: s["by_status"]["sent"] == 1500, timeout_s=90
            )
        finally:
            for worker in workers:
                worker.stop()
        assert stats["by_status"]["pending"] == 0
        assert not [a for a in other_fake.arrivals() if a.status == 429]
        for fake in (fake_provider, other_fake):
            held = [a for a in fake.arrivals() if first_429 + 0.8 < _at(a) < first_429 + 1.8]
            assert held == [], "no worker sent while the provider asked to wait"
            assert [a for a in fake.arrivals() if _at(a) > first_429 + 2], "sending went on after the hold"
    # Without a limit the senders never took from the budget: the row is as the migration left it.
    budget_after = (await db.execute(text("SELECT tokens, refilled_at FROM provider_rate_budget"))).one()
    assert tuple(budget_after) == tuple(budget_before)


async def _first_429(fake: RunningFakeProvider) -> float | None:
    return next((_at(a) for a in fake.arrivals() if a.status == 429), None)


# The README: the worker that got a 429 writes the hold, the others read it within a quarter of a second.
HOLD_REACHES_OTHERS_S = 0.25


async def test_a_429_reaches_the_other_worker_within_a_quarter_of_a_second(
    client: Api, settings: Settings, tmp_path: Path
) -> None:
    await add_clients(client, 1500)
    tuning = {"SEND_BATCH_SIZE": "25", "PROVIDER_CONCURRENCY": "5", "WORKER_CONCURRENCY": "2"}
    with _fake_in_a_thread() as (first_fake, first_url), _fake_in_a_thread() as (other_fake, other_url):
        workers = [
            WorkerProcess(settings, first_url, tmp_path / "first.log", **tuning),
            WorkerProcess(settings, other_url, tmp_path / "second.log", **tuning),
        ]
        try:
            await create_mailing(client, end_at=(utc_now() + dt.timedelta(minutes=5)).isoformat())

            async def both_sending() -> bool:
                return bool(first_fake.arrivals()) and bool(other_fake.arrivals())

            await wait_for(both_sending, bool)
            first_fake.set_options(rate_limit_rate=1.0, retry_after_s=2)

            async def first_429_answered() -> dt.datetime | None:
                return next((a.answered_at for a in first_fake.arrivals() if a.status == 429), None)

            answered = await wait_for(first_429_answered, lambda at: at is not None, timeout_s=10, interval_s=0.01)
            first_fake.set_options(rate_limit_rate=0.0)
            assert answered is not None
            hold_end = answered + dt.timedelta(seconds=2)
            await wait_for(_wall_clock, lambda now: now > hold_end + dt.timedelta(seconds=0.5))
        finally:
            for worker in workers:
                worker.stop()
    reached = answered + dt.timedelta(seconds=HOLD_REACHES_OTHERS_S)
    # Until the hold ends (less the margin a clock read in another process may need), the other worker sent nothing.
    late = [a for a in other_fake.arrivals() if reached < a.arrived_at < hold_end - dt.timedelta(seconds=0.2)]
    assert late == [], f"{len(late)} requests reached the other fake more than {HOLD_REACHES_OTHERS_S} s after the 429"
    assert [a for a in other_fake.arrivals() if a.arrived_at < answered], "the other worker was sending before"


async def _wall_clock() -> dt.datetime:
    return utc_now()
