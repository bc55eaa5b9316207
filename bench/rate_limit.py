"""Provider rate limit benchmark: two workers share NOTIFICATION_PROVIDER_RATE_LIMIT, judged by
the fake provider's own arrival times.

    uv run python bench/rate_limit.py --limit 200 --seconds 60

Seeds limit x seconds worth of SMS parts (clients x parts of the text), sends one mailing with
two worker processes and reports the busiest one-second window (sliding, starting at every
arrival), the fullest and emptiest aligned seconds, and the mean rate from the first arrival to
the last.

The fake provider stands for another host and is the instrument: it runs first whenever it has
work (a real-time scheduling policy, when the benchmark may set one) so that its timestamps are
not bunched by the workers, the API and PostgreSQL competing for the same two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgspec
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import AUTH_HEADERS, free_port, python, service_env, start, stop, throwaway_database, wait_http

from notification.dev.fake_provider import Arrival
from notification.mailings.sms import measure

SEED_CLIENTS = """
INSERT INTO clients (phone, operator_code, tag, timezone)
SELECT (79000000000 + n)::text, '916', 'bench', 'Europe/Moscow' FROM generate_series(1, %(count)s) AS n
"""
PENDING = "SELECT count(*) FROM messages WHERE mailing_id = %(mailing_id)s AND status = 'pending'"
PLANNED = "SELECT planned_at IS NOT NULL FROM mailings WHERE id = %(mailing_id)s"


def _instrument_priority(pid: int) -> None:
    """The fake provider first whenever it has work: a real-time policy where the benchmark may
    set one (root), else a higher nice level, else as it is."""
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(1))
    except PermissionError:
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, pid, -10)


def _finished(conn: psycopg.Connection, params: dict[str, int]) -> bool:
    planned = conn.execute(PLANNED, params).fetchone() == (True,)
    return planned and conn.execute(PENDING, params).fetchone() == (0,)


def busiest_window(times: list[float], parts: int, width_s: float = 1.0) -> int:
    times = sorted(times)
    busiest, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - width_s:
            first += 1
        busiest = max(busiest, (last - first + 1) * parts)
    return busiest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=float, default=200, help="SMS parts per second, both workers together")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--text", default="Rate limited benchmark", help="its parts count against the limit")
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--database-url", default=None, help="server to create the throwaway database on")
    args = parser.parse_args()

    parts = measure(args.text).parts
    clients = math.ceil(args.limit * args.seconds / parts)
    logs = Path(tempfile.mkdtemp(prefix="notification-bench-"))
    with throwaway_database(args.database_url) as settings:
        with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
            conn.execute(SEED_CLIENTS, {"count": clients})
            conn.execute("VACUUM ANALYZE clients")
        provider_port, api_port = free_port(), free_port()
        env = service_env(
            settings,
            PROVIDER_URL=f"http://127.0.0.1:{provider_port}/v1",
            PROVIDER_RATE_LIMIT=str(args.limit),
            LOG_LEVEL="WARNING",
            WORKER_METRICS_PORT="0",
        )
        fake = [python(), "-m", "notification", "fake-provider", "--port", str(provider_port)]
        provider = start(
            [*fake, "--latency-ms", str(args.latency_ms)],
            env,
            logs / "provider.log",
        )
        _instrument_priority(provider.pid)
        api = start(
            [python(), "-m", "notification", "serve", "--host", "127.0.0.1", "--port", str(api_port)],
            env,
            logs / "api.log",
        )
        workers = [
            start([python(), "-m", "procrastinate", "--app=notification.worker.app", "worker"], env, logs / f"w{i}.log")
            for i in range(args.workers)
        ]
        try:
            wait_http(f"http://127.0.0.1:{provider_port}/_fake/received")
            wait_http(f"http://127.0.0.1:{api_port}/health")
            time.sleep(2)  # both workers listening before the jobs arrive, so that both share them
            now = dt.datetime.now(dt.UTC)
            response = httpx.post(
                f"http://127.0.0.1:{api_port}/api/v1/mailings",
                json={
                    "text": args.text,
                    "kind": "service",
                    "start_at": (now - dt.timedelta(seconds=1)).isoformat(),
                    "end_at": (now + dt.timedelta(hours=1)).isoformat(),
                },
                headers=AUTH_HEADERS,
                timeout=30,
            )
            response.raise_for_status()
            params = {"mailing_id": response.json()["id"]}
            deadline = time.monotonic() + args.seconds * 3 + 60
            with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
                while not _finished(conn, params):
                    if time.monotonic() > deadline:
                        raise SystemExit("the mailing did not finish in time")
                    time.sleep(0.5)
            answer = httpx.get(f"http://127.0.0.1:{provider_port}/_fake/arrivals", timeout=60)
            (logs / "arrivals.json").write_bytes(answer.content)
            arrivals = msgspec.json.decode(answer.content, type=list[Arrival])
        finally:
            stop(*workers, api, provider)

    times = [arrival.arrived_at.timestamp() for arrival in arrivals if arrival.accepted]
    first, last = min(times), max(times)
    per_second = [0] * (math.floor(last - first) + 1)
    for t in times:
        per_second[math.floor(t - first)] += parts
    whole = per_second[:-1] or per_second  # the last second is cut short by the end of the mailing
    print(f"limit                      {args.limit:.0f} parts/s, {args.workers} workers, {parts} part(s) per message")
    print(f"requests accepted          {len(times):,} ({len(times) * parts:,} parts) of {len(arrivals):,} received")
    print(f"span                       {last - first:.1f} s")
    print(f"mean                       {len(times) * parts / (last - first):.1f} parts/s")
    print(f"busiest 1 s window         {busiest_window(times, parts)} parts (sliding)")
    print(f"aligned seconds            max {max(whole)}, min {min(whole)} parts")
    print(f"logs                       {logs}")


if __name__ == "__main__":
    main()
