"""Bulk import benchmark: many clients through ``POST /api/v1/clients/bulk`` of a real server.

    uv run python bench/bulk_import.py                      # 100,000 clients in chunks of 10,000
    uv run python bench/bulk_import.py --clients 20000 --chunk 5000 --concurrency 2
    uv run python bench/bulk_import.py --database-url postgresql://user@host:5432/notification

Without ``--database-url`` it creates a throwaway database on the local server (or, when none answers,
on an embedded one) and drops it afterwards. The API runs as ``python -m notification serve`` in a
subprocess, as in production, so the figures include HTTP, JSON decoding, validation and the insert.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import msgspec
import psycopg

from notification.config import Settings, load_settings
from notification.migrate import upgrade_database

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import AUTH_HEADERS, free_port, python, service_env, start, stop, throwaway_database, wait_http

TIMEZONES = ("Europe/Moscow", "Europe/Berlin", "Asia/Vladivostok", "America/New_York", "UTC")
OPERATORS = ("916", "903", "999", "925", "968")
TAGS = ("", "vip", "new", "b2b")
PHONE_SPACE = 10**10


@dataclass(frozen=True)
class Result:
    chunk_seconds: list[float]
    total_seconds: float


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100_000, help="clients to import (default: %(default)s)")
    parser.add_argument("--chunk", type=int, default=10_000, help="clients per request, at most 10,000")
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight at once (default: 1)")
    parser.add_argument(
        "--database-url", default=None, help="an existing database to import into (kept); default: a throwaway one"
    )
    parser.add_argument("--startup-timeout", type=float, default=60.0, help="seconds to wait for the API to answer")
    args = parser.parse_args()
    if args.clients < 1 or not 1 <= args.chunk <= 10_000 or args.concurrency < 1:
        parser.error("--clients must be >= 1, --chunk within 1..10000, --concurrency >= 1")
    return args


@contextlib.contextmanager
def running_api(settings: Settings, startup_timeout: float) -> Iterator[str]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="notification-bench-")) / "api.log"
    env = service_env(settings, LOG_LEVEL="WARNING")
    server = start([python(), "-m", "notification", "serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
    try:
        wait_http(f"{base_url}/health", startup_timeout)
        yield base_url
    finally:
        stop(server)


def make_rows(count: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    # A random contiguous block of numbers: repeated runs against one kept database rarely collide.
    first = rng.randrange(PHONE_SPACE - count)
    return [
        {
            "phone": f"7{first + i:010d}",
            "operator_code": rng.choice(OPERATORS),
            "tag": rng.choice(TAGS),
            "timezone": rng.choice(TIMEZONES),
        }
        for i in range(count)
    ]


def import_clients(base_url: str, rows: list[dict[str, str]], chunk: int, concurrency: int) -> Result:
    chunks = [rows[i : i + chunk] for i in range(0, len(rows), chunk)]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=base_url, timeout=120, limits=limits) as http:

        def post(part: list[dict[str, str]]) -> float:
            started = time.perf_counter()
            response = http.post(
                "/api/v1/clients/bulk",
                content=msgspec.json.encode(part),
                headers={"content-type": "application/json", **AUTH_HEADERS},
            )
            if response.status_code != 201:
                raise SystemExit(f"bulk import answered {response.status_code}: {response.text[:2000]}")
            created = msgspec.json.decode(response.content)
            if [c["phone"] for c in created] != [r["phone"] for r in part]:
                raise SystemExit("bulk import returned other clients than it was sent, or in another order")
            return time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            chunk_seconds = list(pool.map(post, chunks))
        total = time.perf_counter() - started
    return Result(chunk_seconds=chunk_seconds, total_seconds=total)


def count_clients(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM clients").fetchone()
    assert row is not None
    return int(row[0])


def run(args: argparse.Namespace, settings: Settings) -> int:
    rows = make_rows(args.clients, seed=time.time_ns())
    before = count_clients(settings.psycopg_conninfo)
    with running_api(settings, args.startup_timeout) as base_url:
        result = import_clients(base_url, rows, args.chunk, args.concurrency)
    imported = count_clients(settings.psycopg_conninfo) - before

    chunks = result.chunk_seconds
    print(
        f"clients        {args.clients:,} in {len(chunks)} chunks of <= {args.chunk:,}, concurrency {args.concurrency}"
    )
    print(f"total          {result.total_seconds:.2f} s")
    print(f"throughput     {args.clients / result.total_seconds:,.0f} clients/s")
    print(f"chunk p50      {statistics.median(chunks) * 1000:.0f} ms")
    print(f"chunk max      {max(chunks) * 1000:.0f} ms")
    print(f"in database    {imported:,} new rows ({'ok' if imported == args.clients else 'MISMATCH'})")
    return 0 if imported == args.clients else 1


def main() -> int:
    args = parse_args()
    if args.database_url:
        # An existing database: brought up to date, then kept.
        settings = replace(load_settings({}), database_url=args.database_url)
        upgrade_database(settings)
        return run(args, settings)
    with throwaway_database(None) as settings:
        return run(args, settings)


if __name__ == "__main__":
    sys.exit(main())
