"""Writers of one mailing's messages do not queue on its counters; a worker killed mid-batch leaves
them exact; the migration counts the messages that were there before it."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import msgspec
import psycopg
from advanced_alchemy.alembic.commands import AlembicCommands
from alembic.script import ScriptDirectory

from notification.config import Settings
from notification.db import MIGRATIONS_DIR, sqlalchemy_config
from notification.dev.fake_provider import RunningFakeProvider
from notification.stats.counters import fold_counters, verify_counters
from tests.api import Api
from tests.factories import ClientCreateFactory
from tests.waiting import wait_for
from tests.workers import WorkerProcess

_SEED_WITH_MAILING = """
WITH c AS (
    INSERT INTO clients (phone, operator_code, timezone)
    SELECT (79500000000 + n)::text, '916', 'UTC' FROM generate_series(1, %(count)s) n RETURNING id
), g AS (
    {mailing} RETURNING id
)
INSERT INTO messages (mailing_id, client_id) SELECT g.id, c.id FROM g, c RETURNING mailing_id, id
"""
_SEED = _SEED_WITH_MAILING.format(
    mailing="INSERT INTO mailings (text, encoding, parts, start_at, end_at)"
    " VALUES ('x', 'GSM-7', 1, now(), now() + interval '1 hour')"
)
# The counters' revision came before mailings knew their text's encoding and parts.
_SEED_BEFORE_COUNTERS = _SEED_WITH_MAILING.format(
    mailing="INSERT INTO mailings (text, start_at, end_at) VALUES ('x', now(), now() + interval '1 hour')"
)


async def _exact(settings: Settings) -> None:
    async with await psycopg.AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        verification = await verify_counters(conn)
    assert verification.ok, "\n".join(map(str, verification.differences()))


async def test_two_open_transactions_on_one_mailing_write_different_shards(settings: Settings) -> None:
    conninfo = settings.psycopg_conninfo
    async with (
        await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as first,
        await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as second,
    ):
        rows = await (await first.execute(_SEED, {"count": 4})).fetchall()
        mailing_id, ids = rows[0][0], [r[1] for r in rows]
        record = "UPDATE messages SET status = 'sent', sent_at = now(), attempts = 1 WHERE id = %s"
        async with first.transaction():
            await first.execute(record, [ids[0]])
            # With one counter row per key, this would wait for the first transaction's commit.
            await second.execute("SET lock_timeout = '2s'")
            async with second.transaction():
                await second.execute(record, [ids[1]])
                await second.execute(record, [ids[2]])
        shards = await (
            await first.execute(
                "SELECT status, array_agg(shard ORDER BY shard), sum(messages)::int FROM message_counts"
                " WHERE mailing_id = %s GROUP BY status ORDER BY status",
                [mailing_id],
            )
        ).fetchall()
        assert shards == [("pending", [0, 1], 1), ("sent", [0, 1], 3)]
        await _exact(settings)

        # The fold sums every idle shard into one row per key.
        assert await fold_counters(first) >= 2
        folded = await (
            await first.execute(
                "SELECT status, shard, messages, attempts FROM message_counts WHERE mailing_id = %s ORDER BY status",
                [mailing_id],
            )
        ).fetchall()
        assert folded == [("pending", 0, 1, 0), ("sent", 0, 3, 3)]
        minutes = await (
            await first.execute(
                "SELECT count(*) = count(DISTINCT minute), sum(sent)::int FROM message_sends_per_minute"
                " WHERE mailing_id = %s",
                [mailing_id],
            )
        ).fetchone()
        assert minutes == (True, 3)
        await _exact(settings)


async def test_fold_leaves_a_shard_alone_while_its_writer_is_open(settings: Settings) -> None:
    conninfo = settings.psycopg_conninfo
    async with (
        await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as writer,
        await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as folder,
    ):
        rows = await (await writer.execute(_SEED, {"count": 3})).fetchall()
        mailing_id, ids = rows[0][0], [r[1] for r in rows]
        async with writer.transaction():
            await writer.execute("UPDATE messages SET status = 'sent', sent_at = now() WHERE id = %s", [ids[0]])
            await folder.execute("UPDATE messages SET status = 'failed' WHERE id = %s", [ids[1]])
            await folder.execute("SET lock_timeout = '2s'")
            # Shard 0 is the open writer's: the fold neither waits for it nor moves shard 1 into it.
            assert await fold_counters(folder) == 0
        assert await fold_counters(folder) == 1
        counts = await (
            await folder.execute(
                "SELECT status, shard, messages FROM message_counts WHERE mailing_id = %s ORDER BY status",
                [mailing_id],
            )
        ).fetchall()
        assert counts == [("failed", 0, 1), ("pending", 0, 1), ("sent", 0, 1)]
        await _exact(settings)


async def test_truncating_messages_or_clients_empties_their_counters(settings: Settings) -> None:
    async with await psycopg.AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        await conn.execute(_SEED, {"count": 3})
        await conn.execute("UPDATE messages SET status = 'sent', sent_at = now()")
        await conn.execute("TRUNCATE messages")
        await _exact(settings)
        await conn.execute("TRUNCATE clients CASCADE")
        await _exact(settings)
        rows = await (await conn.execute("SELECT count(*) FROM message_counts")).fetchone()
    assert rows == (0,)


async def _stats(api: Api, mailing_id: int) -> dict[str, Any]:
    response = await api.get(f"/api/v1/mailings/{mailing_id}/stats", params={"limit": 1})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_worker_killed_mid_batch_leaves_the_counters_exact(
    client: Api,
    settings: Settings,
    fake_provider: RunningFakeProvider,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    rows = [msgspec.to_builtins(ClientCreateFactory.build(tag="killed")) for _ in range(400)]
    assert (await client.post("/api/v1/clients/bulk", json=rows)).status_code == 201
    fake_provider.set_options(latency_ms=20, latency_jitter_ms=20, error_rate=0.2, reject_rate=0.05)
    first = start_worker(RESULT_FLUSH_SIZE="10", SEND_BATCH_SIZE="50")
    now = dt.datetime.now(dt.UTC)
    response = await client.post(
        "/api/v1/mailings",
        json={
            "text": "Killed mid-batch",
            "kind": "service",
            "start_at": (now - dt.timedelta(minutes=1)).isoformat(),
            "end_at": (now + dt.timedelta(hours=1)).isoformat(),
            "filter": {"tags": ["killed"]},
        },
    )
    mailing_id = response.json()["id"]
    await wait_for(lambda: _stats(client, mailing_id), lambda s: s["by_status"]["sent"] >= 60)

    first.kill()
    killed_at = await _stats(client, mailing_id)
    assert killed_at["by_status"]["pending"] > 0, "the kill must land mid-mailing"
    await _exact(settings)

    start_worker(RESULT_FLUSH_SIZE="10", SEND_BATCH_SIZE="50")
    done = await wait_for(lambda: _stats(client, mailing_id), lambda s: s["by_status"]["pending"] == 0, timeout_s=90)
    await _exact(settings)
    assert done["total"] == 400
    assert done["by_status"]["sent"] + done["by_status"]["failed"] == 400
    assert done["timings"]["first_sent_at"] is not None


def test_the_migration_counts_the_messages_already_there(settings: Settings) -> None:
    commands = AlembicCommands(sqlalchemy_config=sqlalchemy_config(replace(settings)))
    before = ScriptDirectory(str(MIGRATIONS_DIR)).get_revision("0010").down_revision
    assert isinstance(before, str)
    commands.downgrade(revision=before)
    with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        ids = [r[1] for r in conn.execute(_SEED_BEFORE_COUNTERS, {"count": 5}).fetchall()]
        conn.execute(
            "UPDATE messages SET status = 'sent', sent_at = now() - interval '3 minutes', attempts = 2"
            " WHERE id = ANY(%s)",
            [ids[:3]],
        )
        conn.execute(
            "UPDATE messages SET status = 'failed', error_kind = 'http_4xx', attempts = 1 WHERE id = %s", [ids[3]]
        )
    commands.upgrade(revision="head")
    asyncio.run(_exact(settings))
    with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        stats = conn.execute(
            "SELECT total, pending, sent, failed, first_sent_at IS NOT NULL FROM mailing_stats"
        ).fetchall()
        errors = conn.execute(
            "SELECT error_kind, messages, attempts FROM message_counts WHERE status = 'failed'"
        ).fetchall()
    assert stats == [(5, 1, 3, 1, True)]
    assert errors == [("http_4xx", 1, 1)]
