"""Audience preview benchmark: N clients, POST /mailings/preview over HTTP, each shape timed
several times (median), against a freshly vacuumed directory.

    uv run python bench/preview.py --clients 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import AUTH_HEADERS, free_port, python, service_env, start, stop, throwaway_database, wait_http

ZONES = (
    "Europe/Moscow",
    "Europe/Kaliningrad",
    "Europe/Samara",
    "Asia/Yekaterinburg",
    "Asia/Omsk",
    "Asia/Novosibirsk",
    "Asia/Krasnoyarsk",
    "Asia/Irkutsk",
    "Asia/Yakutsk",
    "Asia/Vladivostok",
    "Asia/Magadan",
    "Asia/Kamchatka",
    "Europe/Berlin",
    "America/New_York",
    "UTC",
)

# 100 operator codes, 4 tags, 15 zones, spread by a multiplicative hash so that no column follows the id.
SEED_CLIENTS = """
INSERT INTO clients (phone, operator_code, tag, timezone)
SELECT (79000000000 + n)::text,
       '9' || lpad(((n * 7919) %% 100)::text, 2, '0'),
       (ARRAY['', 'vip', 'new', 'b2b'])[(n * 104729) %% 4 + 1],
       (%(zones)s::text[])[(n * 15485863) %% %(zone_count)s + 1]
FROM generate_series(1, %(count)s::bigint) AS n
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--database-url", default=None, help="server to create the throwaway database on")
    args = parser.parse_args()

    logs = Path(tempfile.mkdtemp(prefix="notification-bench-"))
    with throwaway_database(args.database_url) as settings:
        seeded = time.perf_counter()
        with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
            conn.execute(SEED_CLIENTS, {"count": args.clients, "zones": list(ZONES), "zone_count": len(ZONES)})
            conn.execute("VACUUM ANALYZE clients")
        seeded_s = time.perf_counter() - seeded
        api_port = free_port()
        api = start(
            [python(), "-m", "notification", "serve", "--host", "127.0.0.1", "--port", str(api_port)],
            service_env(settings, LOG_LEVEL="WARNING"),
            logs / "api.log",
        )
        start_at = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        base = {
            "text": "Скидка 20% на всё до конца недели!",
            "kind": "service",
            "start_at": start_at.isoformat(),
            "end_at": (start_at + dt.timedelta(hours=6)).isoformat(),
            "send_window": {"start": "09:00", "end": "21:00"},
        }
        shapes = {
            "everyone, window": base,
            "2 operator codes": base | {"filter": {"operator_codes": ["916", "903"], "tags": []}},
            "1 tag": base | {"filter": {"operator_codes": [], "tags": ["vip"]}},
            "10 codes + 2 tags": base
            | {"filter": {"operator_codes": [f"9{i:02d}" for i in range(10)], "tags": ["vip", "new"]}},
        }
        results: dict[str, tuple[float, int]] = {}
        try:
            wait_http(f"http://127.0.0.1:{api_port}/health")
            with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers=AUTH_HEADERS, timeout=60) as http:
                for name, body in shapes.items():
                    http.post("/api/v1/mailings/preview", json=body).raise_for_status()  # warm up
                    timings = []
                    for _ in range(args.runs):
                        started = time.perf_counter()
                        response = http.post("/api/v1/mailings/preview", json=body)
                        timings.append(time.perf_counter() - started)
                        response.raise_for_status()
                    results[name] = (statistics.median(timings), response.json()["clients"])
        finally:
            stop(api)

    print(f"clients in the directory  {args.clients:,} (seeded and vacuumed in {seeded_s:.1f} s)")
    for name, (median_s, clients) in results.items():
        print(f"{name:<24}  {median_s * 1000:6.0f} ms   ({clients:,} matching, median of {args.runs})")


if __name__ == "__main__":
    main()
