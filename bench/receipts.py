"""Delivery receipts ingested per second over SMPP: the fake SMSC sends a receipt for every message
as fast as its connection takes them, the SMPP provider of the worker's code stores each one (in
batches) and answers its ``deliver_sm`` once stored. The figure runs from the first receipt
written to the last one acknowledged, and every message is checked decided in the database.

    uv run python bench/receipts.py                       # 20,000 messages, a fifth of receipts twice
    uv run python bench/receipts.py --messages 50000 --duplicates 0

The messages are submitted first through the same provider (receipts off), so the SMSC knows their
ids and the database holds them as the engine writes them; only the receipts are timed. The fake
SMSC runs in a process of its own, as an SMSC would be elsewhere: in this one it took half of the
Python time the figure measures.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import throwaway_database

from notification.dev.fake_smsc import FakeSmscOptions, serve_fake_smsc
from notification.provider import smpp_wire as wire
from notification.provider.base import OutgoingMessage
from notification.provider.registry import ProviderSpec, build_provider

MAILING = (
    "INSERT INTO mailings (text, encoding, parts, start_at, end_at)"
    " VALUES ('bench', 'GSM-7', 1, now(), now() + interval '1 day') RETURNING id"
)
MESSAGES = (
    "INSERT INTO messages (mailing_id, status, sent_at, provider, provider_message_id)"
    " SELECT %(mailing_id)s, 'sent', now(), 'smsc', ids.id FROM unnest(%(ids)s::text[]) AS ids(id)"
)
DECIDED = "SELECT count(*) FILTER (WHERE delivery_state IS NOT NULL), count(*) FROM messages"


def fake_smsc_process(pipe: Connection) -> None:
    """The fake SMSC, commanded over ``pipe``: its port first; then, for each list of message ids
    received, their receipts sent and the number answered OK once every one is."""
    with serve_fake_smsc(FakeSmscOptions(seed=23)) as fake:
        pipe.send(fake.port)
        while (ids := pipe.recv()) is not None:
            fake.send_receipts(ids).result()
            while (answered := sum(1 for d in fake.delivers() if d.answer_status is not None)) < len(ids):
                time.sleep(0.02)
            pipe.send((answered, sum(1 for d in fake.delivers() if d.answer_status != wire.ESME_ROK)))


async def submit_all(provider: object, count: int) -> list[str]:
    send = provider.send  # type: ignore[attr-defined]
    results = await asyncio.gather(
        *(send(OutgoingMessage(i, f"79{i:09d}", "Hello"), 30.0) for i in range(1, count + 1))
    )
    return [r.provider_message_id for r in results if r.provider_message_id]


async def run(conninfo: str, messages: int, duplicates: float) -> dict[str, float]:
    from notification.config import load_settings

    settings = load_settings({"NOTIFICATION_DATABASE_URL": conninfo})
    ours, theirs = multiprocessing.get_context("fork").Pipe()
    smsc = multiprocessing.get_context("fork").Process(target=fake_smsc_process, args=(theirs,), daemon=True)
    smsc.start()
    try:
        port = ours.recv()
        spec = ProviderSpec(
            "smsc", "smpp", 1, None, {"host": "127.0.0.1", "port": port, "system_id": "bench"}, window=200
        )
        entry = build_provider(spec, settings)
        await entry.provider.open()
        try:
            ids = await submit_all(entry.provider, messages)
            with psycopg.connect(conninfo, autocommit=True) as conn:
                mailing_id = conn.execute(MAILING).fetchone()[0]  # type: ignore[index]
                conn.execute(MESSAGES, {"mailing_id": mailing_id, "ids": ids})
                conn.execute("VACUUM ANALYZE messages")
            rng = random.Random(23)
            receipts = ids + [i for i in ids if rng.random() < duplicates]
            rng.shuffle(receipts)
            started = time.perf_counter()
            ours.send(receipts)
            answer: Any = await asyncio.to_thread(ours.recv)
            elapsed = time.perf_counter() - started
            refused = int(answer[1])
        finally:
            await entry.provider.aclose()
    finally:
        ours.send(None)
        smsc.join(10)
    with psycopg.connect(conninfo) as conn:
        decided, total = conn.execute(DECIDED).fetchone()  # type: ignore[misc]
    return {
        "receipts": len(receipts),
        "seconds": elapsed,
        "refused": refused,
        "decided": decided,
        "messages": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--duplicates", type=float, default=0.2, help="share of receipts sent twice")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with throwaway_database(args.database_url) as settings:
        figures = asyncio.run(run(settings.psycopg_conninfo, args.messages, args.duplicates))
    print(f"messages {figures['messages']:,.0f}, receipts {figures['receipts']:,.0f} (duplicates included)")
    print(f"decided {figures['decided']:,.0f}, answered with an error {figures['refused']:,.0f}")
    print(f"SMPP receipts/s {figures['receipts'] / figures['seconds']:,.0f} ({figures['seconds']:.2f} s)")


if __name__ == "__main__":
    main()
