"""What the resilience tests look at: the database as the worker left it, what the fake provider
received and when, and the workers' own log lines."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import psycopg
from psycopg import AsyncConnection

from notification.config import Settings
from notification.delivery.sending import Delivery
from notification.dev.fake_provider import Arrival, Received
from notification.mailings.sms import measure
from notification.messages.models import MessageStatus
from notification.provider.registry import ProviderRegistry
from tests.waiting import wait_for
from tests.workers import WorkerProcess


async def rows(conninfo: str, statement: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        cursor = await conn.execute(statement, params or {})
        return await cursor.fetchall()


async def backends_waiting_for_a_lock(conninfo: str) -> int:
    """Connections to this test's database waiting on a lock: how a test knows a transaction it
    started has reached the row another one holds."""
    found = await rows(
        conninfo,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    return int(found[0][0])


async def insert_clients(conninfo: str, count: int, *, tags: Sequence[str] = ("",), first: int = 0) -> None:
    """``count`` clients in one statement (the bulk API would take longer than the behaviour under
    test), their tags taken in turn from ``tags``."""
    await rows(
        conninfo,
        "INSERT INTO clients (phone, operator_code, tag, timezone)"
        " SELECT '75' || lpad(g::text, 9, '0'), '916', (%(tags)s::text[])[1 + mod(g, %(kinds)s)], 'Europe/Moscow'"
        " FROM generate_series(%(first)s, %(first)s + %(count)s - 1) g RETURNING id",
        {"count": count, "tags": list(tags), "kinds": len(tags), "first": first},
    )


async def counts(conninfo: str, mailing_id: int) -> dict[str, int]:
    """The mailing's messages by status, every status present."""
    found = await rows(
        conninfo,
        "SELECT status, count(*) FROM messages WHERE mailing_id = %(id)s GROUP BY status",
        {"id": mailing_id},
    )
    return {status.value: 0 for status in MessageStatus} | {status: int(n) for status, n in found}


async def message_ids(conninfo: str, mailing_id: int, *, where: str = "TRUE") -> set[int]:
    found = await rows(
        conninfo,
        f"SELECT m.id FROM messages m JOIN clients c ON c.id = m.client_id WHERE m.mailing_id = %(id)s AND {where}",
        {"id": mailing_id},
    )
    return {message_id for (message_id,) in found}


async def planned_version(conninfo: str, mailing_id: int) -> int:
    found = await rows(conninfo, "SELECT planned_version FROM mailings WHERE id = %(id)s", {"id": mailing_id})
    return int(found[0][0])


async def jobs_left(conninfo: str, task: str) -> int:
    """Jobs of ``task`` (``delivery:send_messages``...) waiting or running."""
    found = await rows(
        conninfo,
        "SELECT count(*) FROM procrastinate_jobs WHERE task_name = %(task)s AND status IN ('todo', 'doing')",
        {"task": task},
    )
    return int(found[0][0])


def resent(received: Received, ids: Iterable[int] | None = None) -> int:
    """Requests beyond the first, over ``ids`` (every msgId when None)."""
    chosen = received.requests if ids is None else {i: received.requests.get(i, 0) for i in ids}
    return sum(max(0, n - 1) for n in chosen.values())


def duplicate_bound(provider_concurrency: int, worker_concurrency: int, result_flush_size: int) -> int:
    """What a worker lost at once may have made the provider see twice: the requests in flight, and
    per running batch the answers not yet written (a flush's worth, one more arriving meanwhile)."""
    return provider_concurrency + worker_concurrency * result_flush_size


def arrivals_of(arrivals: list[Arrival], ids: set[int], *, after: float = float("-inf")) -> list[Arrival]:
    return [a for a in arrivals if a.msg_id in ids and a.arrived_at.timestamp() > after]


def log_contains(worker: WorkerProcess, fragment: str) -> bool:
    return any(fragment in line for line in worker.log_lines())


async def wait_for_log(worker: WorkerProcess, fragment: str, timeout_s: float = 30.0) -> float:
    """Waits for a line containing ``fragment``, polling often; returns when it was seen (monotonic)."""

    async def seen() -> bool:
        return log_contains(worker, fragment)

    await wait_for(seen, bool, timeout_s=timeout_s, interval_s=0.01)
    return time.time()


@asynccontextmanager
async def engine_in_process(settings: Settings, provider_url: str) -> AsyncIterator[tuple[Delivery, AsyncConnection]]:
    """The worker's delivery engine in the test's own process (its senders, watcher and provider client),
    with a connection of its own: a test calls ``send_batch`` itself and reads the report."""
    provider_settings = replace(settings, provider_url=provider_url)
    delivery = Delivery(provider_settings, ProviderRegistry.from_settings(provider_settings))
    delivery.start()
    try:
        async with await AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
            yield delivery, conn
    finally:
        await delivery.aclose()


async def add_mailing(conninfo: str, *, start_at: str, end_at: str, text: str = "Hello") -> int:
    """A mailing written straight to the table (no planning job), times as SQL expressions."""
    sms = measure(text)
    found = await rows(
        conninfo,
        "INSERT INTO mailings (text, encoding, parts, start_at, end_at, filter_operator_codes, filter_tags,"
        f" plan_version, planned_version) VALUES (%(text)s, %(encoding)s, %(parts)s, {start_at}, {end_at},"
        " '{}', '{}', 1, 1) RETURNING id",
        {"text": text, "encoding": sms.encoding.value, "parts": sms.parts},
    )
    return int(found[0][0])


async def add_pending_messages(conninfo: str, mailing_id: int) -> list[int]:
    """A pending message, due now, for every client, as a plan leaves them; their ids in order."""
    found = await rows(
        conninfo,
        "INSERT INTO messages (mailing_id, client_id, due_at) SELECT %(id)s, id, now() FROM clients ORDER BY id"
        " RETURNING id",
        {"id": mailing_id},
    )
    return sorted(message_id for (message_id,) in found)


async def execute(conninfo: str, statement: str) -> None:
    """A statement that returns no rows (DDL, say), committed."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(statement)
