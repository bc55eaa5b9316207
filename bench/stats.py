"""Statistics benchmark: the stats endpoints and the metrics scrape of a real server over many messages.

    uv run python bench/stats.py                                  # 10M messages, 1,000 mailings, 1M clients
    uv run python bench/stats.py --messages 100000000 --repeat 20
    uv run python bench/stats.py --keep                           # keep the database until Ctrl-C / SIGTERM

Fills a throwaway database set-based (generate_series): clients, mailings whose sizes follow a
Zipf-like curve (a few as large as the client directory, a long tail of small ones), and their
messages in a realistic status mix (80 % sent, 10 % pending, 5 % failed, 4 % expired, 1 % cancelled).
Each mailing reaches a contiguous range of clients, so (mailing_id, client_id) stays unique, and its
messages lie together in the heap as a real fan-out leaves them. The indexes and foreign keys of
``messages`` are dropped for the load and rebuilt from their own definitions afterwards, the counting
triggers are off during the load and ``notification stats rebuild``'s recount fills the counters, then
``VACUUM ANALYZE``; ``notification stats verify``'s full count checks them.

It then starts ``python -m notification serve`` and times over HTTP ``GET /api/v1/mailings/stats``,
``GET /api/v1/mailings/{id}/stats?limit=50`` for the largest and the smallest mailing and ``GET
/metrics``, and prints the ``EXPLAIN (ANALYZE, BUFFERS)`` summary of the SQL behind each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import free_port, python, service_env, start, stop, throwaway_database, wait_http

from notification import metrics
from notification.messages.models import Message
from notification.stats import queries
from notification.stats.counters import rebuild_counters, verify_counters

SEED_CLIENTS = """
INSERT INTO clients (phone, operator_code, tag, timezone)
SELECT (79000000000 + n)::text,
       '9' || lpad((n %% 100)::text, 2, '0'),
       (ARRAY['', 'vip', 'new', 'b2b'])[n %% 4 + 1],
       (ARRAY['Europe/Moscow', 'Europe/Berlin', 'Asia/Vladivostok', 'UTC'])[n %% 4 + 1]
FROM generate_series(1, %(count)s) AS n
"""

# Started over the past weeks, each open for a day, all planned; mailing n starts n hours after the first.
SEED_MAILINGS = """
INSERT INTO mailings (text, encoding, parts, start_at, end_at, planned_version, planned_at)
SELECT 'Benchmark mailing ' || n, 'GSM-7', 1,
       now() - interval '30 days' + n * interval '1 hour',
       now() - interval '29 days' + n * interval '1 hour',
       1,
       now() - interval '30 days' + n * interval '1 hour'
FROM generate_series(1, %(count)s) AS n
ORDER BY n
RETURNING id, start_at
"""

# Mailing by mailing, in client order, as fan-outs leave them in the heap. A hash of (mailing, position)
# picks the status: deterministic, and evenly mixed within a mailing.
SEED_MESSAGES = """
INSERT INTO messages (mailing_id, client_id, status, created_at, due_at, sent_at, attempts, last_error, error_kind)
SELECT q.mailing_id,
       q.client_id,
       s.status,
       q.start_at - interval '1 minute',
       q.start_at,
       CASE WHEN s.status = 'sent' THEN q.start_at + q.k * interval '2 ms' END,
       CASE s.status WHEN 'sent' THEN 1 WHEN 'failed' THEN 3 WHEN 'expired' THEN 1 ELSE 0 END,
       CASE s.status
           WHEN 'failed' THEN 'provider rejected the message: 400'
           WHEN 'expired' THEN 'end_at passed before it could be sent'
       END,
       CASE s.status WHEN 'failed' THEN 'http_4xx' WHEN 'expired' THEN 'deadline' END
FROM (
    SELECT u.mailing_id, u.start_at, k,
           (u.first_client + k - 1) %% %(clients)s + 1 AS client_id,
           ((hashint8(u.mailing_id * 4294967296 + k) %% 100) + 100) %% 100 AS bucket
    FROM unnest(%(ids)s::bigint[], %(starts)s::timestamptz[], %(sizes)s::bigint[], %(first_clients)s::bigint[])
         AS u(mailing_id, start_at, size, first_client)
    CROSS JOIN LATERAL generate_series(1, u.size) AS k
) AS q
CROSS JOIN LATERAL (
    SELECT CASE
               WHEN q.bucket < 80 THEN 'sent'
               WHEN q.bucket < 90 THEN 'pending'
               WHEN q.bucket < 95 THEN 'failed'
               WHEN q.bucket < 99 THEN 'expired'
               ELSE 'cancelled'
           END AS status
) AS s
"""

CONSTRAINTS = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'messages'::regclass AND contype IN ('p', 'u', 'f')
ORDER BY CASE contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 ELSE 2 END, conname
"""

PLAIN_INDEXES = """
SELECT i.relname, pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = 'messages'::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid)
ORDER BY i.relname
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000_000, help="messages in all (default: %(default)s)")
    parser.add_argument("--mailings", type=int, default=1000, help="mailings (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=1_000_000, help="clients (default: %(default)s)")
    parser.add_argument("--skew", type=float, default=1.0, help="Zipf exponent of the mailing sizes (default: 1)")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per endpoint (default: %(default)s)")
    parser.add_argument("--database-url", default=None, help="server to create the throwaway database on")
    parser.add_argument("--log-level", default="WARNING", help="the API's log level")
    parser.add_argument(
        "--keep", action="store_true", help="after the run, keep the database until Ctrl-C or SIGTERM, then drop it"
    )
    args = parser.parse_args()
    if min(args.messages, args.mailings, args.clients, args.repeat) < 1:
        parser.error("--messages, --mailings, --clients and --repeat must be >= 1")
    if args.messages > args.mailings * args.clients:
        parser.error("--messages exceeds --mailings x --clients: (mailing_id, client_id) is unique")
    return args


def mailing_sizes(messages: int, mailings: int, clients: int, skew: float) -> list[int]:
    """Zipf-like sizes (mailing i ~ 1 / i**skew) capped at the client count, summing to ``messages``."""
    weights = [1 / (i + 1) ** skew for i in range(mailings)]

    def total(scale: float) -> int:
        return sum(min(clients, int(scale * w)) for w in weights)

    low, high = 0.0, float(clients) / weights[-1] + 1
    for _ in range(200):
        middle = (low + high) / 2
        if total(middle) < messages:
            low = middle
        else:
            high = middle
    sizes = [min(clients, int(low * w)) for w in weights]
    left = messages - sum(sizes)
    for i in range(mailings):
        extra = min(left, clients - sizes[i])
        sizes[i] += extra
        left -= extra
    assert left == 0
    assert sum(sizes) == messages
    return sizes


def fmt_s(seconds: float) -> str:
    return f"{seconds:7.1f} s"


def say(line: str) -> None:
    print(line, flush=True)


def load(conn: psycopg.Connection[Any], args: argparse.Namespace, sizes: list[int]) -> list[int]:
    """Fills the database; returns the mailing ids, in the order of ``sizes``."""
    started = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute("SET synchronous_commit = off")

    step = time.perf_counter()
    conn.execute(SEED_CLIENTS, {"count": args.clients})
    mailings = sorted(conn.execute(SEED_MAILINGS, {"count": args.mailings}).fetchall())
    ids, starts = [row[0] for row in mailings], [row[1] for row in mailings]
    say(f"  clients + mailings     {fmt_s(time.perf_counter() - step)}")

    constraints = conn.execute(CONSTRAINTS).fetchall()
    indexes = conn.execute(PLAIN_INDEXES).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    for name, _ in reversed(constraints):
        conn.execute(f'ALTER TABLE messages DROP CONSTRAINT "{name}"')

    step = time.perf_counter()
    first_clients = [i * args.clients // args.mailings for i in range(args.mailings)]
    # The counters are filled by one recount below, as the migration's back-fill does.
    conn.execute("ALTER TABLE messages DISABLE TRIGGER USER")
    conn.execute(
        SEED_MESSAGES,
        {"clients": args.clients, "ids": ids, "starts": starts, "sizes": sizes, "first_clients": first_clients},
    )
    conn.execute("ALTER TABLE messages ENABLE TRIGGER USER")
    say(f"  messages (no indexes)  {fmt_s(time.perf_counter() - step)}")

    step = time.perf_counter()
    for name, definition in constraints:
        if not definition.startswith("FOREIGN KEY"):
            conn.execute(f'ALTER TABLE messages ADD CONSTRAINT "{name}" {definition}')
    for _, definition in indexes:
        conn.execute(definition)
    say(f"  indexes                {fmt_s(time.perf_counter() - step)}")
    step = time.perf_counter()
    for name, definition in constraints:
        if definition.startswith("FOREIGN KEY"):
            conn.execute(f'ALTER TABLE messages ADD CONSTRAINT "{name}" {definition}')
    say(f"  foreign keys           {fmt_s(time.perf_counter() - step)}")
    if conn.execute(CONSTRAINTS).fetchall() != constraints or conn.execute(PLAIN_INDEXES).fetchall() != indexes:
        raise SystemExit("the rebuilt indexes or constraints of messages differ from the migrated ones")

    step = time.perf_counter()
    rebuilt = asyncio.run(_with_async_connection(conn, rebuild_counters))
    say(f"  counters (recount)     {fmt_s(time.perf_counter() - step)}  ({rebuilt.count_rows:,} rows)")

    step = time.perf_counter()
    conn.execute("VACUUM ANALYZE")
    say(f"  VACUUM ANALYZE         {fmt_s(time.perf_counter() - step)}")
    say(f"  load in all            {fmt_s(time.perf_counter() - started)}")

    step = time.perf_counter()
    verification = asyncio.run(_with_async_connection(conn, verify_counters))
    if not verification.ok:
        raise SystemExit(f"counters differ from the messages: {verification.counts[:3]} {verification.sends[:3]}")
    say(f"  counters verified      {fmt_s(time.perf_counter() - step)}  (a full GROUP BY of messages)")
    return ids


T = TypeVar("T")


async def _with_async_connection(
    conn: psycopg.Connection[Any], action: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]
) -> T:
    async with await psycopg.AsyncConnection.connect(conn.info.dsn, autocommit=True) as async_conn:
        return await action(async_conn)


# -- EXPLAIN ---------------------------------------------------------------------------------------


def _compiled(statement: Any) -> str:
    return str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


def all_stats_sql() -> dict[str, str]:
    """The statement behind ``GET /mailings/stats``, as psycopg runs it."""
    return {"all_mailing_counts": queries.statements["all_mailing_counts"]}


def endpoint_sql(mailing_id: int, limit: int) -> dict[str, str]:
    """The statements behind ``GET /mailings/{id}/stats`` (the mailing lookup by primary key aside):
    the counts, timings and window waits of the mailing, and the page of messages as advanced-alchemy
    builds it (its total comes from the counts)."""
    page = select(Message).where(Message.mailing_id == mailing_id).order_by(Message.id.asc()).limit(limit).offset(0)
    named = ("mailing_counts", "mailing_timings", "mailing_window_waits")
    return {**{name: queries.statements[name] for name in named}, "page rows": _compiled(page)}


def metrics_sql() -> dict[str, str]:
    """The statements of a ``/metrics`` scrape's snapshot."""
    return {
        "messages": metrics.statements["messages"],
        "mailings": _compiled(metrics._MAILINGS),
        "clients": metrics.statements["clients"],
        "error kinds": queries.statements["counted_error_kinds"],
        "queue": metrics.statements["queue"],
        "oldest due": metrics.statements["oldest_due"],
    }


# Nodes that only pass rows along; the tree printed leaves them out (their children stay).
_PASS_THROUGH = {"Subquery Scan", "Result", "Materialize", "Hash"}


def _walk(node: dict[str, Any], depth: int = 0) -> list[tuple[int, dict[str, Any]]]:
    """The plan in pre-order with each node's depth, pass-through nodes skipped."""
    shown = node["Node Type"] not in _PASS_THROUGH or depth == 0
    found = [(depth, node)] if shown else []
    for child in node.get("Plans", []):
        found.extend(_walk(child, depth + 1 if shown else depth))
    return found


def _describe(node: dict[str, Any]) -> str:
    label = node["Node Type"]
    if label == "Aggregate":
        label = {"Hashed": "HashAggregate", "Sorted": "GroupAggregate"}.get(node.get("Strategy", ""), label)
    if node.get("Partial Mode", "Simple") != "Simple":
        label = f"{node['Partial Mode']} {label}"
    if node.get("Parallel Aware"):
        label = f"Parallel {label}"
    if "Index Name" in node:
        label += f" using {node['Index Name']}"
    if "Relation Name" in node:
        label += f" on {node['Relation Name']}"
    loops = node.get("Actual Loops", 1)
    details = [f"rows={node.get('Actual Rows', 0) * loops:,.0f}", f"{node.get('Actual Total Time', 0):.0f} ms"]
    if "Rows Removed by Filter" in node:
        details.append(f"removed by filter={node['Rows Removed by Filter'] * loops:,.0f}")
    if "Heap Fetches" in node:
        details.append(f"heap fetches={node['Heap Fetches']:,}")
    if "Workers Launched" in node:
        details.append(f"workers={node['Workers Launched']}")
    if "Sort Method" in node:
        details.append(f"{node['Sort Method']} {node.get('Sort Space Used', 0):,} kB {node.get('Sort Space Type', '')}")
    return f"{label} ({', '.join(details)})"


def explain(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> list[str]:
    """Execution time, buffers, JIT, then the plan tree (pass-through nodes left out)."""
    row = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", params).fetchone()
    assert row is not None
    document = row[0][0] if isinstance(row[0], list) else row[0]
    root = document["Plan"]
    hit, read = root.get("Shared Hit Blocks", 0), root.get("Shared Read Blocks", 0)
    summary = (
        f"execution {document['Execution Time']:.1f} ms, planning {document['Planning Time']:.1f} ms, "
        f"buffers hit={hit:,} read={read:,} ({(hit + read) * 8 / 1024:,.0f} MB)"
    )
    if "JIT" in document:
        summary += f", JIT {document['JIT']['Timing']['Total']:.0f} ms"
    return [summary] + [f"{'  ' * depth}{_describe(node)}" for depth, node in _walk(root)]


# -- HTTP ------------------------------------------------------------------------------------------


def time_get(client: httpx.Client, url: str, repeat: int, json_body: bool = True) -> tuple[float, list[float], Any]:
    """The first (untimed warm-up) request's ms, then ``repeat`` timed ones, and the last body."""
    started = time.perf_counter()
    response = client.get(url)
    first = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return first, timings, response.json() if json_body else response.text


def summary_ms(first: float, timings: list[float]) -> str:
    return (
        f"min {min(timings):8.1f}  median {statistics.median(timings):8.1f}  max {max(timings):8.1f} ms"
        f"   (first, untimed: {first:.1f} ms; n={len(timings)})"
    )


def wait_for_signal() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        while True:
            signal.pause()


def main() -> None:
    args = parse_args()
    sizes = mailing_sizes(args.messages, args.mailings, args.clients, args.skew)
    logs = Path(tempfile.mkdtemp(prefix="notification-bench-"))
    say(f"messages {args.messages:,}  mailings {args.mailings:,}  clients {args.clients:,}")
    say(f"mailing sizes: largest {max(sizes):,}, smallest {min(sizes):,}, median {statistics.median(sizes):,.0f}")

    with throwaway_database(args.database_url) as settings:
        with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
            say("load")
            ids = load(conn, args, sizes)
            size_of = dict(zip(ids, sizes, strict=True))
            large = max(ids, key=lambda i: (size_of[i], -i))
            small = min(ids, key=lambda i: (size_of[i] or float("inf"), i))
            heap_mb, index_mb = conn.execute(
                "SELECT pg_table_size('messages') / 1048576.0, pg_indexes_size('messages') / 1048576.0"
            ).fetchone()  # type: ignore[misc]
            say(f"  messages table {heap_mb:,.0f} MB, its indexes {index_mb:,.0f} MB")

            say("")
            say("EXPLAIN (ANALYZE, BUFFERS)")
            say("  GET /api/v1/mailings/stats")
            for name, sql in all_stats_sql().items():
                say(f"    {name}")
                for line in explain(conn, sql, {}):
                    say(f"      {line}")
            for label, mailing_id in (("large", large), ("small", small)):
                say(f"  GET /api/v1/mailings/{mailing_id}/stats?limit=50  ({label}: {size_of[mailing_id]:,} messages)")
                for name, sql in endpoint_sql(mailing_id, 50).items():
                    say(f"    {name}")
                    for line in explain(conn, sql, {"mailing_id": mailing_id}):
                        say(f"      {line}")
            say("  GET /metrics")
            for name, sql in metrics_sql().items():
                say(f"    {name}")
                for line in explain(conn, sql, {}):
                    say(f"      {line}")

        port, token = free_port(), secrets.token_urlsafe(24)
        api = start(
            [python(), "-m", "notification", "serve", "--host", "127.0.0.1", "--port", str(port)],
            service_env(settings, LOG_LEVEL=args.log_level, API_TOKENS=token),
            logs / "api.log",
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}/health")
            say("")
            say(f"HTTP, {args.repeat} timed requests each (after one untimed)")
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
                first, timings, body = time_get(client, "/api/v1/mailings/stats", args.repeat)
                say(f"  GET /api/v1/mailings/stats                     {summary_ms(first, timings)}")
                if body["totals"]["total"] != args.messages or len(body["items"]) != args.mailings:
                    raise SystemExit(f"unexpected totals: {body['totals']}, {len(body['items'])} items")
                shares_n = body["totals"]["by_status"]
                shares = {s: n / args.messages for s, n in shares_n.items()}
                say("    by status: " + ", ".join(f"{s} {share:.1%}" for s, share in shares.items()))
                for label, mailing_id in (("large", large), ("small", small)):
                    url = f"/api/v1/mailings/{mailing_id}/stats?limit=50"
                    first, timings, body = time_get(client, url, args.repeat)
                    say(f"  GET {url:<42} {summary_ms(first, timings)}  [{label}, {size_of[mailing_id]:,} messages]")
                    if body["total"] != size_of[mailing_id] or len(body["messages"]["items"]) != min(
                        50, size_of[mailing_id]
                    ):
                        raise SystemExit(f"unexpected stats of mailing {mailing_id}: total {body['total']}")
                first, timings, scrape = time_get(client, "/metrics", args.repeat, json_body=False)
                say(f"  GET /metrics                                   {summary_ms(first, timings)}")
                scraped_sent = next(
                    sample.value
                    for family in text_string_to_metric_families(scrape)
                    for sample in family.samples
                    if sample.name == "notification_messages" and sample.labels == {"status": "sent"}
                )
                if scraped_sent != shares_n["sent"]:
                    raise SystemExit(f"the scrape shows {scraped_sent} messages sent, not {shares_n['sent']}")
        finally:
            stop(api)
        say(f"API log: {logs / 'api.log'}")

        if args.keep:
            say("")
            say(f"database kept until Ctrl-C or SIGTERM: {settings.psycopg_conninfo}")
            wait_for_signal()


if __name__ == "__main__":
    main()
