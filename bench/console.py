"""Console benchmark: the console's pages over HTTP on a large directory, and a 100,000-row import.

    uv run python bench/console.py                          # 1M clients, 10M messages, 100 mailings
    uv run python bench/console.py --messages 1000000 --repeat 10
    uv run python bench/console.py --messages 1000000 --mailings 1 --largest 1000000   # one 1M-message mailing

Loads the data as bench/stats.py does (its loader, reused), then makes its largest mailing the one
sending now: started half an hour ago, its sent messages spread over that half hour, so that the
dashboard's "today", "last hour" and send-rate figures have a million messages to read rather than
none. It then starts ``python -m notification serve``, signs in to the console with a token and
times each page over HTTP (the dashboard against its 100 ms target, the largest mailing's page
against its 50 ms), prints the EXPLAIN of the figures those two pages read and of the client search
at this size, and imports 100,000 new clients from a CSV file through the console's upload form.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import Select
from sqlalchemy.dialects import postgresql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import free_port, python, service_env, start, stop, throwaway_database, wait_http

from notification.clients.schemas import ClientSearch
from notification.clients.services import search_count_statement, search_order, search_statement
from notification.stats.queries import (
    statements,
)
from stats import explain, load, mailing_sizes, say

# The largest mailing, sending now: its sent messages spread over the last 30 minutes.
MAKE_CURRENT = """
UPDATE mailings SET start_at = now() - interval '30 minutes', end_at = now() + interval '1 hour',
                    planned_at = now() - interval '30 minutes'
WHERE id = %(mailing_id)s
"""
SPREAD_SENDS = """
UPDATE messages SET sent_at = now() - (id %% 1800) * interval '1 second', due_at = now() - interval '30 minutes'
WHERE mailing_id = %(mailing_id)s AND status = 'sent'
"""
RECENT_ERRORS = """
UPDATE messages SET due_at = now() - interval '10 minutes'
WHERE mailing_id = %(mailing_id)s AND status IN ('failed', 'expired')
"""

SEARCHES = {
    "everyone": ClientSearch(),
    "phone prefix 7900012": ClientSearch(phone_prefix="7900012"),
    "phone prefix 79001": ClientSearch(phone_prefix="79001"),
    "operator code 916": ClientSearch(operator_code="916"),
    "tag vip": ClientSearch(tag="vip"),
    "time zone UTC": ClientSearch(timezone="UTC"),
    "operator 916 + tag vip (none)": ClientSearch(operator_code="916", tag="vip"),
    "phone prefix 7900012 + tag vip": ClientSearch(phone_prefix="7900012", tag="vip"),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000_000, help="messages in all (default: %(default)s)")
    parser.add_argument("--mailings", type=int, default=100, help="mailings (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=1_000_000, help="clients (default: %(default)s)")
    parser.add_argument("--skew", type=float, default=1.0, help="Zipf exponent of the mailing sizes (default: 1)")
    parser.add_argument(
        "--largest", type=int, default=None, help="messages of the largest mailing (default: as the Zipf sizes fall)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per page (default: %(default)s)")
    parser.add_argument("--import-rows", type=int, default=100_000, help="clients in the imported CSV file")
    parser.add_argument("--database-url", default=None, help="server to create the throwaway database on")
    parser.add_argument("--log-level", default="WARNING", help="the service's log level")
    return parser.parse_args()


def middle_key(search: ClientSearch) -> str:
    """A cursor halfway through the directory, in the search's order (the bench's phones are 7900 + id)."""
    column, _ = search_order(search)
    return "79000500000" if column.key == "phone" else "500000"


def _sql(statement: Select[Any]) -> str:
    return str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


def time_page(
    client: httpx.Client, path: str, repeat: int, expect: str, fragment: str | None
) -> tuple[float, list[float]]:
    """One untimed request, then ``repeat`` timed ones; each page must answer 200 and show ``expect``.
    With ``fragment``, the request is htmx's refresh of that fragment of the page."""
    headers = {"HX-Request": "true", "HX-Target": fragment} if fragment else {}
    timings = []
    first = 0.0
    for attempt in range(repeat + 1):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200 or expect not in response.text:
            raise SystemExit(f"GET {path}: {response.status_code}, {expect!r} not in the page")
        if attempt == 0:
            first = elapsed
        else:
            timings.append(elapsed)
    return first, timings


def sign_in(client: httpx.Client, token: str) -> None:
    page = client.get("/admin/sign-in")
    found = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    if found is None:
        raise SystemExit("no CSRF field on the sign-in page")
    response = client.post(
        "/admin/sign-in", data={"_csrf_token": found.group(1), "token": token, "timezone": "Europe/Moscow"}
    )
    if "Dashboard" not in response.text:
        raise SystemExit(f"sign-in failed: {response.status_code}")


def csrf(client: httpx.Client, path: str) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', client.get(path).text)
    if found is None:
        raise SystemExit(f"no CSRF field on {path}")
    return found.group(1)


def main() -> None:
    args = parse_args()
    sizes = mailing_sizes(args.messages, args.mailings, args.clients, args.skew)
    if args.largest is not None:
        largest = min(args.largest, args.clients, args.messages)
        rest = (
            mailing_sizes(args.messages - largest, args.mailings - 1, args.clients, args.skew)
            if args.mailings > 1
            else []
        )
        sizes = [largest, *rest]
    logs = Path(tempfile.mkdtemp(prefix="notification-bench-"))
    say(f"clients {args.clients:,}  messages {args.messages:,}  mailings {args.mailings:,}")
    with throwaway_database(args.database_url) as settings:
        with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
            say("load")
            ids = load(conn, args, sizes)
            size_of = dict(zip(ids, sizes, strict=True))
            large = max(ids, key=lambda i: (size_of[i], -i))
            small = min(ids, key=lambda i: (size_of[i] or float("inf"), i))
            step = time.perf_counter()
            conn.execute(MAKE_CURRENT, {"mailing_id": large})
            conn.execute(SPREAD_SENDS, {"mailing_id": large})
            conn.execute(RECENT_ERRORS, {"mailing_id": large})
            conn.execute("VACUUM ANALYZE messages")
            conn.execute("VACUUM ANALYZE mailings")
            say(f"  mailing {large} ({size_of[large]:,} messages) made current {time.perf_counter() - step:7.1f} s")
            say("")
            say("EXPLAIN (ANALYZE, BUFFERS) of the dashboard's and the largest mailing's figures")
            figures = {
                "dashboard: errors of the last hour": (
                    statements["error_kinds_since"],
                    {"since": dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)},
                ),
                "dashboard: today's messages": (
                    statements["totals_of_mailings_running_between"],
                    {"since": dt.datetime.now(dt.UTC) - dt.timedelta(hours=12), "until": dt.datetime.now(dt.UTC)},
                ),
                "mailing page: its error kinds": (statements["mailing_error_kinds"], {"mailing_id": large}),
                "mailing page: its counts": (statements["mailing_counts"], {"mailing_id": large}),
                "mailing page: its timings": (statements["mailing_timings"], {"mailing_id": large}),
            }
            for label, (sql, params) in figures.items():
                say(f"  {label}")
                for line in explain(conn, sql, params):
                    say(f"    {line}")
            say("")
            say("EXPLAIN (ANALYZE, BUFFERS) of the client search")
            for name, search in SEARCHES.items():
                for label, statement in (
                    ("first page", search_statement(search, 51)),
                    ("page halfway through", search_statement(search, 51, after=middle_key(search))),
                    ("count, capped at 10,001", search_count_statement(search, 10_001)),
                ):
                    say(f"  {name}: {label}")
                    for line in explain(conn, _sql(statement), {}):
                        say(f"    {line}")

        port, token = free_port(), secrets.token_urlsafe(24)
        service = start(
            [python(), "-m", "notification", "serve", "--host", "127.0.0.1", "--port", str(port)],
            service_env(settings, LOG_LEVEL=args.log_level, API_TOKENS=token),
            logs / "api.log",
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}/health")
            with httpx.Client(base_url=base, timeout=300, follow_redirects=True) as client:
                sign_in(client, token)
                pages = [
                    # What any answer costs on this machine now: no database, no template.
                    ("/health", "ok", None),
                    ("/admin", "Messages by status", None),
                    ("/admin", "Sent per minute", "figures"),
                    ("/admin/mailings", "Mailings", None),
                    ("/admin/mailings", "progress", "mailing-rows"),
                    (f"/admin/mailings/{large}", f"Mailing {large}", None),
                    (f"/admin/mailings/{large}", "Progress", "progress"),
                    (f"/admin/mailings/{large}?status=failed", f"Mailing {large}", None),
                    (f"/admin/mailings/{small}", f"Mailing {small}", None),
                    ("/admin/mailings/new", "New mailing", None),
                    ("/admin/clients", "clients match", None),
                    ("/admin/clients?phone_prefix=7900012", "clients match", None),
                    ("/admin/clients?tag=vip&operator_code=916", "clients match", None),
                    ("/admin/clients?timezone=UTC", "clients match", None),
                    ("/admin/clients?tag=vip&after=500000", "clients match", None),
                    ("/admin/clients?phone_prefix=79&after=79000500000", "clients match", None),
                ]
                targets = {"/admin": 100.0, f"/admin/mailings/{large}": 50.0}
                say("")
                say(f"HTTP, {args.repeat} timed requests per page (after one untimed), signed in")
                say(f"  (mailing {large} has {size_of[large]:,} messages; the targets hold at 10M messages)")
                for path, expect, fragment in pages:
                    first, timings = time_page(client, path, args.repeat, expect, fragment)
                    shown = path + (f" (#{fragment})" if fragment else "")
                    target = targets.get(path)
                    verdict = ""
                    if target is not None:
                        verdict = (
                            f"  target {target:.0f} ms: {'met' if statistics.median(timings) < target else 'MISSED'}"
                        )
                    say(
                        f"  GET {shown:<54} median {statistics.median(timings):7.1f} ms"
                        f"  min {min(timings):7.1f}  max {max(timings):7.1f}  (first {first:.1f}){verdict}"
                    )

                lines = "".join(f"{78_000_000_000 + i},Europe/Moscow,import{i % 5},\n" for i in range(args.import_rows))
                content = ("phone,timezone,tag,operator_code\n" + lines).encode()
                token_value = csrf(client, "/admin/clients/import")
                started = time.perf_counter()
                response = client.post(
                    "/admin/clients/import",
                    data={"_csrf_token": token_value},
                    files={"file": ("clients.csv", content, "text/csv")},
                )
                elapsed = time.perf_counter() - started
                if f"Imported {args.import_rows:,} clients" not in response.text:
                    raise SystemExit(f"import failed: {response.status_code}")
                say("")
                say(
                    f"CSV import through the console: {args.import_rows:,} rows ({len(content) / 2**20:.1f} MB)"
                    f" into {args.clients:,} clients: {elapsed:.1f} s over HTTP"
                )
        finally:
            stop(service)
        say(f"service log: {logs / 'api.log'}")


if __name__ == "__main__":
    main()
