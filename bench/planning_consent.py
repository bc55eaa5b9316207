"""What the suppression list and consent cost planning: one advertising mailing to every client of a
directory whose clients have all given consent, planned with an empty suppression list and with part of
the directory suppressed, side by side in one sitting (alternating, so that a drift of the machine hits
both alike). The figure is the planning transaction as the engine runs it (``planning.plan_mailing``:
the left-out count, the INSERT ... SELECT with its anti-join and consent test, the ANALYZE, the batches
read back), committed; the send jobs' deferral, the same either way, is left out.

    uv run python bench/planning_consent.py                     # 1,000,000 clients, 100,000 suppressed
    uv run python bench/planning_consent.py --clients 200000 --suppressed 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import throwaway_database

from notification.delivery.planning import plan_mailing

SEED = """
INSERT INTO clients (phone, operator_code, tag, timezone, consent_given_at, consent_source)
SELECT (79000000000 + n)::text, (900 + n %% 30)::text, '', 'Europe/Moscow', now() - interval '1 day', 'bench'
FROM generate_series(1, %(count)s) AS n
"""
# Every tenth client, up to the count asked for: spread over the directory as opt-outs are.
SUPPRESS = """
INSERT INTO suppressions (phone, reason, created_by)
SELECT (79000000000 + n)::text, 'stop_word', 'bench'
FROM generate_series(1, %(clients)s) AS n WHERE n %% %(every)s = 0 LIMIT %(count)s
"""
MAILING = (
    "INSERT INTO mailings (text, kind, encoding, parts, start_at, end_at)"
    " VALUES ('bench', 'advertising', 'GSM-7', 1, now() - interval '1 minute', now() + interval '1 day') RETURNING id"
)
BATCH_SIZE = 500


async def _plan_once(conninfo: str) -> tuple[float, int, int]:
    """Seconds to plan and commit a new mailing; the messages it added and the numbers it left out."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        mailing_id = (await (await conn.execute(MAILING)).fetchone() or (0,))[0]
        started = time.perf_counter()
        async with conn.transaction():
            report = await plan_mailing(conn, mailing_id, 1, BATCH_SIZE)
        elapsed = time.perf_counter() - started
        # Out of the way of the next run, outside its timing.
        await conn.execute("TRUNCATE messages, message_counts, message_sends_per_minute")
        await conn.execute("DELETE FROM mailings")
        await conn.execute("VACUUM ANALYZE messages")
        return elapsed, report.added, report.left_out_suppressed


async def run(conninfo: str, clients: int, suppressed: int, rounds: int) -> None:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        started = time.perf_counter()
        await conn.execute(SEED, {"count": clients})
        await conn.execute("VACUUM ANALYZE clients")
        print(f"directory         {clients:,} clients, all consenting, in {time.perf_counter() - started:.1f} s")
    every = max(1, clients // max(1, suppressed))
    timings: dict[str, list[float]] = {"without": [], "with": []}
    for round_ in range(1, rounds + 1):
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            await conn.execute("TRUNCATE suppressions")
        seconds, added, left_out = await _plan_once(conninfo)
        timings["without"].append(seconds)
        print(f"round {round_} without  {seconds:.2f} s, {added:,} messages, {left_out:,} left out")
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            await conn.execute(SUPPRESS, {"clients": clients, "every": every, "count": suppressed})
            await conn.execute("VACUUM ANALYZE suppressions")
        seconds, added, left_out = await _plan_once(conninfo)
        timings["with"].append(seconds)
        print(f"round {round_} with     {seconds:.2f} s, {added:,} messages, {left_out:,} left out")
    without, with_ = statistics.median(timings["without"]), statistics.median(timings["with"])
    print(f"planning without suppressions      median {without:.2f} s of {rounds}")
    print(f"planning with {suppressed:,} suppressed  median {with_:.2f} s of {rounds}")
    print(f"with / without                     {with_ / without:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--suppressed", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", help="a server to create the throwaway database on")
    args = parser.parse_args()
    with throwaway_database(args.database_url) as settings:
        asyncio.run(run(settings.psycopg_conninfo, args.clients, args.suppressed, args.rounds))


if __name__ == "__main__":
    main()
