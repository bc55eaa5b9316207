"""Webhook events delivered per second to a local receiver, and what the outbox triggers cost the
statement that changes the messages.

    uv run python bench/webhooks.py                              # 20,000 events, receiver answers at once
    uv run python bench/webhooks.py --events 20000 --latency-ms 20 --concurrency 32

N messages are recorded `sent` 100 per UPDATE, as the engine writes answers: with the webhook
triggers off, with them on and no endpoint (their cheap check only), and with an endpoint
subscribed to `message.sent` (N outbox rows written by the trigger), each time on N messages of a
mailing of its own.
Then one worker process delivers the N events to a receiver on a thread of this process (aiohttp,
answering 200 after ``--latency-ms``); the rate is N over the time from the worker's first request
to the receiver's last.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from aiohttp import web
from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import free_port, python, service_env, start, stop, throwaway_database

from notification.provider.secrets import SecretBox
from notification.webhooks.service import new_secret

SEED = """
INSERT INTO clients (phone, operator_code, tag, timezone)
SELECT (79000000000 + n)::text, '916', '', 'UTC' FROM generate_series(1, %(count)s) AS n
"""
MAILING = (
    "INSERT INTO mailings (text, encoding, parts, start_at, end_at)"
    " VALUES ('bench', 'GSM-7', 1, now() + interval '1 day', now() + interval '2 days') RETURNING id"
)
PLAN = "INSERT INTO messages (mailing_id, client_id) SELECT %(mailing_id)s, id FROM clients"
IDS = "SELECT id FROM messages WHERE mailing_id = %(mailing_id)s ORDER BY id"
# The engine writes answers 100 at a time (NOTIFICATION_RESULT_FLUSH_SIZE): one statement each.
FLUSH = 100
SEND_SLICE = "UPDATE messages SET status = 'sent', sent_at = now() WHERE id = ANY(%(ids)s)"
ENDPOINT = "INSERT INTO webhook_endpoints (url, events, secret) VALUES (%(url)s, ARRAY['message.sent'], %(secret)s)"
WEBHOOK_TRIGGERS = ("messages_webhooked_on_update", "messages_webhooked_on_insert")
UNDELIVERED = "SELECT count(*) FROM webhook_outbox WHERE delivered_at IS NULL"


class Receiver:
    """Counts the requests it answers, and when the first and the last arrived."""

    def __init__(self, latency_ms: float) -> None:
        self.latency_s = latency_ms / 1000
        self.port = free_port()
        self.count = 0
        self.first = self.last = 0.0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        now = time.monotonic()
        self.first = self.first or now
        self.last = now
        self.count += 1
        return web.Response(text="ok")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> Receiver:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def timed_send(conn: psycopg.Connection, events: int) -> float:
    """A fresh mailing's messages sent as the engine records them, 100 per statement; the seconds it took."""
    mailing_id = conn.execute(MAILING).fetchone()[0]  # type: ignore[index]
    conn.execute(PLAN, {"mailing_id": mailing_id})
    ids = [row[0] for row in conn.execute(IDS, {"mailing_id": mailing_id})]
    started = time.perf_counter()
    for first in range(0, len(ids), FLUSH):
        conn.execute(SEND_SLICE, {"ids": ids[first : first + FLUSH]})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=0, help="the receiver's answer time")
    parser.add_argument("--concurrency", type=int, default=8, help="NOTIFICATION_WEBHOOK_CONCURRENCY")
    parser.add_argument("--database-url", default=None, help="server to create the throwaway database on")
    parser.add_argument("--timeout-s", type=float, default=600)
    args = parser.parse_args()
    key = Fernet.generate_key().decode()

    with throwaway_database(args.database_url) as settings, Receiver(args.latency_ms) as receiver:
        with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
            conn.execute(SEED, {"count": args.events})
            conn.execute("ANALYZE")
            timed_send(conn, args.events)  # warms the caches: the first statements of a fresh database pay more
            # Off and on in turns, ABBA (each run adds a mailing, so a later run meets a bigger table),
            # the best of each: the machine's other work moves single runs.
            runs: dict[str, list[float]] = {"DISABLE": [], "ENABLE": []}
            for state in ("DISABLE", "ENABLE", "ENABLE", "DISABLE", "DISABLE", "ENABLE"):
                for trigger in WEBHOOK_TRIGGERS:
                    conn.execute(f"ALTER TABLE messages {state} TRIGGER {trigger}")
                runs[state].append(timed_send(conn, args.events))
            triggers_off, without = min(runs["DISABLE"]), min(runs["ENABLE"])
            sealed = SecretBox((key,)).seal(new_secret())
            conn.execute(ENDPOINT, {"url": f"http://127.0.0.1:{receiver.port}/hooks", "secret": sealed})
            with_endpoint = timed_send(conn, args.events)
            statements = -(-args.events // FLUSH)
            print(f"{args.events:,} messages recorded sent, {FLUSH} per UPDATE ({statements:,} statements)")
            print(f"  webhook triggers off       {triggers_off * 1000:8.1f} ms")
            print(f"  no endpoint                {without * 1000:8.1f} ms  (best of 3 each, in turns)")
            print(f"  an endpoint wanting it     {with_endpoint * 1000:8.1f} ms  ({args.events:,} outbox rows)")

            env = service_env(
                settings,
                SECRET_KEY=key,
                WEBHOOK_CONCURRENCY=str(args.concurrency),
                LOG_LEVEL="WARNING",
                WORKER_METRICS_PORT="0",
            )
            with tempfile.TemporaryDirectory() as logs:
                worker = start(
                    [python(), "-m", "procrastinate", "--app=notification.worker.app", "worker"],
                    env,
                    Path(logs) / "worker.log",
                )
                try:
                    deadline = time.monotonic() + args.timeout_s
                    while conn.execute(UNDELIVERED).fetchone()[0]:  # type: ignore[index]
                        if time.monotonic() > deadline or worker.poll() is not None:
                            raise SystemExit("the events were not all delivered:\n" + _tail(Path(logs)))
                        time.sleep(0.05)
                finally:
                    stop(worker)
        span = max(receiver.last - receiver.first, 1e-9)
        print(f"webhook events delivered     {receiver.count:,} in {span:.2f} s: {receiver.count / span:,.0f} events/s")
        print(f"  receiver latency {args.latency_ms:g} ms, {args.concurrency} requests in flight per endpoint")


def _tail(logs: Path) -> str:
    return "\n".join((logs / "worker.log").read_text(errors="replace").splitlines()[-20:])


if __name__ == "__main__":
    main()
