"""The counters stay equal to a full GROUP BY of messages whatever happens to them.

Random sequences (one seeded generator per run, its seed in the test id) of the real write paths:
clients and mailings through the API, planning and re-planning with the engine's planning, send
batches with the engine's Delivery against the fake provider over HTTP (random failures, rejections,
rate limits, malformed answers; twin and concurrent batches), the overdue sweep, operators' retries,
rolled-back changes, client and mailing deletions, retention and shard folding. After every step,
``verify_counters`` must find no difference, and the statistics API must agree with the messages.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec
import pytest
from procrastinate import PsycopgConnector

from notification.config import Settings
from notification.delivery import planning
from notification.delivery.queries import queries
from notification.delivery.sending import Delivery
from notification.dev.fake_provider import RunningFakeProvider
from notification.jobs import create_connector
from notification.provider.registry import ProviderRegistry
from notification.stats.counters import fold_counters, verify_counters
from notification.stats.retention import purge_expired_messages
from tests.api import Api
from tests.factories import ClientCreateFactory

TAGS = ("a", "b", "c")
STATUSES = ("pending", "sent", "failed", "expired", "cancelled")

# Exactly the count the counters stand for, read from the messages themselves.
_GROUPED = """
SELECT m.mailing_id, m.status, count(*) FROM messages m
JOIN mailings g ON g.id = m.mailing_id AND g.messages_purged_at IS NULL
GROUP BY 1, 2
"""


@dataclass
class Batch:
    mailing_id: int
    plan_version: int
    ids: list[int]


@dataclass
class World:
    """What the sequence has made so far, and the means to make more."""

    api: Api
    connector: PsycopgConnector
    delivery: Delivery
    provider: RunningFakeProvider
    rng: random.Random
    clients: list[int] = field(default_factory=list)
    mailings: list[int] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)
    purged_counts: dict[int, dict[str, Any]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    async def sql(self, statement: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        async with self.connector.pool.connection() as conn:
            cur = await conn.execute(statement, params)
            return await cur.fetchall() if cur.description else []

    def live_mailings(self) -> list[int]:
        return [m for m in self.mailings if m not in self.purged_counts]

    async def plan(self, mailing_id: int) -> None:
        async with self.connector.pool.connection() as conn, conn.transaction():
            row = await (await conn.execute("SELECT plan_version FROM mailings WHERE id = %s", [mailing_id])).fetchone()
            if row is None:
                return
            report = await planning.plan_mailing(conn, mailing_id, row[0], self.rng.choice([2, 5, 50]))
        for id_lists in report.send_batches.values():
            self.batches.extend(Batch(mailing_id, row[0], ids) for ids in id_lists)

    async def send(self, batch: Batch) -> None:
        async with self.connector.pool.connection() as conn:
            report = await self.delivery.send_batch(conn, batch.mailing_id, batch.plan_version, batch.ids)
            if report.end_at is not None and report.stopped is None:
                async with conn.transaction():
                    follow_up = await self.delivery.follow_up(conn, batch.ids, report.end_at)
                if follow_up is not None:
                    self.batches.append(Batch(batch.mailing_id, batch.plan_version, follow_up.message_ids))


async def add_clients(world: World) -> None:
    rows = [
        msgspec.to_builtins(ClientCreateFactory.build(tag=world.rng.choice(TAGS)))
        for _ in range(world.rng.randint(1, 12))
    ]
    response = await world.api.post("/api/v1/clients/bulk", json=rows)
    assert response.status_code == 201, response.text
    world.clients.extend(c["id"] for c in response.json())


def _filter(rng: random.Random) -> dict[str, list[str]]:
    return {"tags": rng.sample(TAGS, rng.randint(0, 2))}


async def create_mailing(world: World) -> None:
    now = dt.datetime.now(dt.UTC)
    response = await world.api.post(
        "/api/v1/mailings",
        json={
            "text": "Counted",
            "kind": "service",
            "start_at": (now - dt.timedelta(minutes=1)).isoformat(),
            "end_at": (now + dt.timedelta(hours=1)).isoformat(),
            "filter": _filter(world.rng),
        },
    )
    assert response.status_code == 201, response.text
    world.mailings.append(response.json()["id"])
    await world.plan(world.mailings[-1])


async def change_filter(world: World) -> None:
    """A re-plan: newly matching clients added, cancelled ones matching again re-planned, the rest cancelled."""
    if not world.live_mailings():
        return
    mailing_id = world.rng.choice(world.live_mailings())
    response = await world.api.patch(f"/api/v1/mailings/{mailing_id}", json={"filter": _filter(world.rng)})
    assert response.status_code in {200, 404}, response.text
    await world.plan(mailing_id)


async def end_mailing(world: World) -> None:
    """Its end moves to the past: planning expires what is pending, batches expire what they hold."""
    if not world.live_mailings():
        return
    mailing_id = world.rng.choice(world.live_mailings())
    end_at = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()
    response = await world.api.patch(f"/api/v1/mailings/{mailing_id}", json={"end_at": end_at})
    assert response.status_code in {200, 404}, response.text
    await world.plan(mailing_id)


async def send_batches(world: World) -> None:
    if not world.batches:
        return
    world.provider.set_options(
        error_rate=world.rng.choice([0, 0.2, 0.5]),
        reject_rate=world.rng.choice([0, 0.1]),
        rate_limit_rate=world.rng.choice([0, 0.1]),
        retry_after_s=0.05,
        malformed_rate=world.rng.choice([0, 0.1]),
        seed=world.rng.randint(0, 1 << 30),
    )
    # Sometimes twins of one batch, sometimes several batches at once: concurrent writers.
    chosen = [world.rng.choice(world.batches) for _ in range(world.rng.randint(1, 3))]
    for batch in chosen:
        if batch in world.batches and world.rng.random() < 0.7:
            world.batches.remove(batch)
    await asyncio.gather(*(world.send(batch) for batch in chosen))


async def expire_overdue(world: World) -> None:
    await world.sql(queries["expire_overdue"])


async def retry_failed(world: World) -> None:
    """An operator sends failed and expired messages again through POST /mailings/{id}/retry (the retry
    service itself, with a new end in case the mailing has ended), then the plan it asks for runs."""
    if not world.live_mailings():
        return
    mailing_id = world.rng.choice(world.live_mailings())
    end_at = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    response = await world.api.post(
        f"/api/v1/mailings/{mailing_id}/retry", json={"statuses": ["failed", "expired"], "end_at": end_at}
    )
    assert response.status_code in {200, 404}, response.text
    if response.status_code == 200 and response.json()["requeued"]:
        await world.plan(mailing_id)


async def roll_back_a_change(world: World) -> None:
    async with world.connector.pool.connection() as conn, conn.transaction(force_rollback=True):
        await conn.execute("UPDATE messages SET status = 'cancelled' WHERE id % 3 = 0")
        await conn.execute("DELETE FROM messages WHERE id % 5 = 0")


async def delete_client(world: World) -> None:
    if not world.clients:
        return
    client_id = world.clients.pop(world.rng.randrange(len(world.clients)))
    response = await world.api.delete(f"/api/v1/clients/{client_id}")
    assert response.status_code == 204, response.text


async def delete_mailing(world: World) -> None:
    if not world.mailings:
        return
    mailing_id = world.mailings.pop(world.rng.randrange(len(world.mailings)))
    world.purged_counts.pop(mailing_id, None)
    response = await world.api.delete(f"/api/v1/mailings/{mailing_id}")
    assert response.status_code == 204, response.text
    rows = await world.sql("SELECT count(*) FROM message_counts WHERE mailing_id = %(m)s", {"m": mailing_id})
    assert rows == [(0,)], "a deleted mailing takes its counters with it"


async def age_and_purge(world: World) -> None:
    """A mailing with nothing pending ends long ago; retention deletes its messages, its counts stay."""
    candidates = await world.sql(
        "SELECT g.id FROM mailings g WHERE g.messages_purged_at IS NULL AND NOT EXISTS"
        " (SELECT 1 FROM messages m WHERE m.mailing_id = g.id AND m.status = 'pending') ORDER BY g.id"
    )
    if not candidates:
        return
    mailing_id = world.rng.choice(candidates)[0]
    before = (await world.api.get(f"/api/v1/mailings/{mailing_id}/stats")).json()
    await world.sql(
        "UPDATE mailings SET start_at = now() - interval '41 days', end_at = now() - interval '40 days'"
        " WHERE id = %(m)s",
        {"m": mailing_id},
    )
    async with world.connector.pool.connection() as conn:
        await purge_expired_messages(conn, retention_days=30, batch_size=world.rng.choice([1, 4, 1000]))
    world.purged_counts[mailing_id] = {"total": before["total"], "by_status": before["by_status"]}


async def fold(world: World) -> None:
    async with world.connector.pool.connection() as conn:
        await fold_counters(conn)


Step = Callable[[World], Awaitable[None]]
STEPS: list[tuple[Step, int]] = [
    (add_clients, 4),
    (create_mailing, 3),
    (change_filter, 2),
    (end_mailing, 1),
    (send_batches, 8),
    (expire_overdue, 1),
    (retry_failed, 1),
    (roll_back_a_change, 1),
    (delete_client, 2),
    (delete_mailing, 1),
    (age_and_purge, 1),
    (fold, 1),
]


async def assert_counters_exact(world: World) -> None:
    async with world.connector.pool.connection() as conn:
        verification = await verify_counters(conn)
    assert verification.ok, "\n".join(map(str, verification.differences()))


async def assert_api_agrees(world: World) -> None:
    grouped: dict[int, dict[str, int]] = {}
    for mailing_id, status, count in await world.sql(_GROUPED):
        grouped.setdefault(mailing_id, dict.fromkeys(STATUSES, 0))[status] = count
    body = (await world.api.get("/api/v1/mailings/stats")).json()
    for item in body["items"]:
        if item["mailing_id"] in world.purged_counts:
            expected = world.purged_counts[item["mailing_id"]]
            assert {"total": item["total"], "by_status": item["by_status"]} == expected
        else:
            by_status = grouped.get(item["mailing_id"], dict.fromkeys(STATUSES, 0))
            assert item["by_status"] == by_status, item["mailing_id"]
            assert item["total"] == sum(by_status.values())
    assert sorted(item["mailing_id"] for item in body["items"]) == sorted(world.mailings)


@pytest.fixture
async def world_parts(
    settings: Settings, fake_provider: RunningFakeProvider
) -> AsyncIterator[tuple[PsycopgConnector, Delivery]]:
    fast = replace(settings, provider_url=fake_provider.base_url, retry_base_s=0.02, retry_max_s=0.1)
    connector = create_connector(fast, max_size=8)
    await connector.open_async()
    delivery = Delivery(fast, ProviderRegistry.from_settings(fast))
    delivery.start()
    try:
        yield connector, delivery
    finally:
        await delivery.aclose()
        await connector.close_async()


@pytest.mark.parametrize("seed", [11, 23, 37, 41, 59])
async def test_random_sequences_keep_counters_equal_to_a_full_count(
    seed: int,
    client: Api,
    fake_provider: RunningFakeProvider,
    world_parts: tuple[PsycopgConnector, Delivery],
) -> None:
    connector, delivery = world_parts
    world = World(client, connector, delivery, fake_provider, random.Random(seed))
    ClientCreateFactory.seed_random(seed)
    await add_clients(world)
    await create_mailing(world)
    steps, weights = zip(*STEPS, strict=True)
    for _ in range(45):
        step = world.rng.choices(steps, weights)[0]
        world.log.append(step.__name__)
        try:
            await step(world)
            await assert_counters_exact(world)
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}, after {' > '.join(world.log)}: {exc}") from exc
    await assert_api_agrees(world)
