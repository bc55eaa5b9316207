"""Directory facets benchmark: N clients (100 operator codes, T tags) imported set-based with the
facet triggers in place, then GET /api/v1/clients/facets over HTTP timed several times (median),
beside the scan it replaces (GROUP BY over the directory).

    uv run python bench/facets.py --clients 1000000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import AUTH_HEADERS, free_port, python, service_env, start, stop, throwaway_database, wait_http

# 100 operator codes and --tags tags, spread by a multiplicative hash so that no column follows the id.
SEED_CLIENTS = """
INSERT INTO clients (phone, operator_code, tag, timezone)
SELECT (79000000000 + n)::text,
       '9' || lpad(((n * 7919) %% 100)::text, 2, '0'),
       CASE WHEN n %% 10 = 0 THEN '' ELSE 'tag-' || ((n * 104729) %% %(tags)s) END,
       'Europe/Moscow'
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
"""
SEED_BATCH = 100_000
SCAN = (
    "SELECT 'tag', tag, count(*) FROM clients GROUP BY tag"
    " UNION ALL SELECT 'operator_code', operator_code, count(*) FROM clients GROUP BY operator_code"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--database-url", default=None, help="server to create the throwaway database on")
    args = parser.parse_args()

    logs = Path(tempfile.mkdtemp(prefix="notification-bench-"))
    with throwaway_database(args.database_url) as settings:
        seeded = time.perf_counter()
        with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
            # In batches, as imports arrive: each statement's trigger adds its own counts.
            for first in range(1, args.clients + 1, SEED_BATCH):
                last = min(first + SEED_BATCH - 1, args.clients)
                conn.execute(SEED_CLIENTS, {"first": first, "last": last, "tags": args.tags})
            conn.execute("VACUUM ANALYZE clients")
            seeded_s = time.perf_counter() - seeded
            scans = []
            for _ in range(3):
                started = time.perf_counter()
                scanned = conn.execute(SCAN).fetchall()
                scans.append(time.perf_counter() - started)
        api_port = free_port()
        api = start(
            [python(), "-m", "notification", "serve", "--host", "127.0.0.1", "--port", str(api_port)],
            service_env(settings, LOG_LEVEL="WARNING"),
            logs / "api.log",
        )
        try:
            wait_http(f"http://127.0.0.1:{api_port}/health", timeout_s=120)
            with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers=AUTH_HEADERS, timeout=60) as http:
                http.get("/api/v1/clients/facets").raise_for_status()  # warm up
                timings = []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    response = http.get("/api/v1/clients/facets")
                    timings.append(time.perf_counter() - started)
                    response.raise_for_status()
        finally:
            stop(api)
    body = response.json()
    counted = {("tag", f["tag"]): f["clients"] for f in body["tags"]}
    counted |= {("operator_code", f["code"]): f["clients"] for f in body["operator_codes"]}
    assert counted == {(kind, value): n for kind, value, n in scanned}, "the facets differ from a scan"

    print(f"clients in the directory  {args.clients:,} (imported with the facet triggers in {seeded_s:.1f} s)")
    print(f"facets                    {len(body['tags'])} tags, {len(body['operator_codes'])} operator codes")
    print(f"GET /clients/facets       {statistics.median(timings) * 1000:6.1f} ms  (median of {args.runs}, over HTTP)")
    print(f"the scan it replaces      {statistics.median(scans) * 1000:6.1f} ms  (GROUP BY over clients, median of 3)")


if __name__ == "__main__":
    main()
