"""What the message counters cost the writes that keep them: the delivery engine's claim and record
statements, replayed by concurrent writers on one mailing, with the counting triggers off, on, and
on with every writer forced onto one shard (the contention that sharding avoids).

    uv run python bench/counter_writes.py                       # 200,000 messages, 4 writers
    uv run python bench/counter_writes.py --messages 100000 --writers 8 --rounds 3

Each writer takes slices of 100 messages (the engine's result flush size) and, in autocommit, claims
them (attempts + 1, a lease) and records them sent, one statement each, as a send batch does. The
figure is statements per second over all writers, and each statement's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import throwaway_database

SEED = """
INSERT INTO clients (phone, operator_code, tag, timezone)
SELECT (79000000000 + n)::text, '916', '', 'UTC' FROM generate_series(1, %(count)s) AS n;
"""
MAILING = (
    "INSERT INTO mailings (text, encoding, parts, start_at, end_at)"
    " VALUES ('bench', 'GSM-7', 1, now(), now() + interval '1 day') RETURNING id"
)
PLAN = "INSERT INTO messages (mailing_id, client_id, due_at) SELECT %(mailing_id)s, id, now() FROM clients"
IDS = "SELECT id FROM messages WHERE mailing_id = %(mailing_id)s ORDER BY id"
RESET = """
UPDATE messages SET status = 'pending', sent_at = NULL, attempts = 0, leased_until = NULL
WHERE mailing_id = %(mailing_id)s
"""

# The shapes of the engine's claim and record statements (messages/delivery.py).
CLAIM = """
WITH claimable AS (
    SELECT m.id FROM messages m JOIN clients c ON c.id = m.client_id
    WHERE m.id = ANY(%(ids)s) AND m.mailing_id = %(mailing_id)s AND m.status = 'pending'
      AND m.due_at <= now() AND (m.leased_until IS NULL OR m.leased_until <= now())
    FOR UPDATE OF m SKIP LOCKED
)
UPDATE messages m
SET leased_until = now() + make_interval(secs => 60), attempts = m.attempts + 1
FROM claimable, clients c
WHERE m.id = claimable.id AND c.id = m.client_id
RETURNING m.id, m.client_id, c.phone, m.attempts, c.timezone
"""
RECORD = """
WITH locked AS (SELECT id FROM messages WHERE id = ANY(%(ids)s) ORDER BY id FOR UPDATE)
UPDATE messages m
SET status = 'sent', sent_at = now(), last_error = NULL, leased_until = NULL
FROM locked WHERE m.id = locked.id AND m.status = 'pending'
"""

TRIGGERS = ("messages_counted_on_insert", "messages_counted_on_update", "messages_counted_on_delete")
ONE_SHARD = """
CREATE OR REPLACE FUNCTION counter_shard() RETURNS smallint LANGUAGE sql AS 'SELECT 0::smallint'
"""


async def writer(conninfo: str, mailing_id: int, slices: list[list[int]], latencies: list[float]) -> None:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        for ids in slices:
            for statement in (CLAIM, RECORD):
                started = time.perf_counter()
                await conn.execute(statement, {"ids": ids, "mailing_id": mailing_id})
                latencies.append((time.perf_counter() - started) * 1000)


async def run(conninfo: str, mailing_id: int, ids: list[int], writers: int, slice_size: int) -> dict[str, float]:
    slices = [ids[i : i + slice_size] for i in range(0, len(ids), slice_size)]
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(writer(conninfo, mailing_id, slices[w::writers], latencies) for w in range(writers)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "statements/s": len(latencies) / elapsed,
        "median ms": statistics.median(latencies),
        "p99 ms": latencies[int(len(latencies) * 0.99)],
    }


def set_mode(conn: psycopg.Connection[Any], mode: str, shard_function: str) -> None:
    action = "DISABLE" if mode == "off" else "ENABLE"
    for trigger in TRIGGERS:
        conn.execute(f"ALTER TABLE messages {action} TRIGGER {trigger}")
    conn.execute(ONE_SHARD if mode == "one shard" else shard_function)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--slice", type=int, default=100, help="messages per statement (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each mode, interleaved")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    with throwaway_database(args.database_url) as settings:
        conninfo = settings.psycopg_conninfo
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(SEED, {"count": args.messages})
            mailing_id = conn.execute(MAILING).fetchone()[0]  # type: ignore[index]
            conn.execute(PLAN, {"mailing_id": mailing_id})
            conn.execute("VACUUM ANALYZE")
            ids = [row[0] for row in conn.execute(IDS, {"mailing_id": mailing_id})]
            row = conn.execute("SELECT pg_get_functiondef('counter_shard()'::regprocedure)").fetchone()
            shard_function = row[0]  # type: ignore[index]
            results: dict[str, list[dict[str, float]]] = {}
            for _ in range(args.rounds):
                for mode in ("off", "on", "one shard"):
                    set_mode(conn, "off", shard_function)
                    conn.execute(RESET, {"mailing_id": mailing_id})
                    conn.execute("VACUUM messages")
                    set_mode(conn, mode, shard_function)
                    results.setdefault(mode, []).append(
                        asyncio.run(run(conninfo, mailing_id, ids, args.writers, args.slice))
                    )
            set_mode(conn, "on", shard_function)

    print(f"messages {args.messages:,}, writers {args.writers}, {args.slice} messages per statement")
    print(f"{'triggers':<12} {'statements/s':>14} {'median ms':>10} {'p99 ms':>8}")
    for mode, runs in results.items():
        for figures in runs:
            print(
                f"{mode:<12} {figures['statements/s']:>14,.0f} {figures['median ms']:>10.2f} {figures['p99 ms']:>8.2f}"
            )


if __name__ == "__main__":
    main()
