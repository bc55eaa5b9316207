"""End-to-end delivery benchmark: N clients, one mailing, the fake provider with a given latency.

    uv run python bench/delivery.py --clients 100000 --latency-ms 50
    uv run python bench/delivery.py --clients 100000 --workers 2    # two worker processes
    uv run python bench/delivery.py --clients 100000 --smpp --latency-ms 10   # through the fake SMSC, window 50
    uv run python bench/delivery.py --clients 100000 --two-providers   # two HTTP providers, routed half and half
    uv run python bench/delivery.py --clients 100000 --personalised    # a template over every client's attributes
    uv run python bench/delivery.py --clients 100000 --unpersonalised  # the same clients, the same text written out

Reports the fan-out time (API request to every message planned and every send job deferred),
messages/s from the API request to the last message final, and the worker's peak RSS. With
``--personalised`` every client has a name (a third Latin, a third Cyrillic, a third none) and an
order number, the mailing's text names both, and it also reports the render and measure cost per
message (timed in this process over the same clients) and the parts sent, by parts per message.
``--unpersonalised`` is what ``--personalised`` is compared with: the same clients and attributes,
and the text with one client's values written in (the same encoding and length, no variables).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
from psycopg.types.json import Jsonb

from notification.dev.fake_smsc import FakeSmscOptions, serve_fake_smsc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    AUTH_HEADERS,
    cpu_seconds,
    free_port,
    machine_busy_seconds,
    peak_rss_mb,
    python,
    service_env,
    start,
    stop,
    throwaway_database,
    wait_http,
)

SEED_CLIENTS = """
INSERT INTO clients (phone, operator_code, tag, timezone, attributes)
SELECT (79000000000 + n)::text, '9' || lpad((n %% 100)::text, 2, '0'), 'bench', 'Europe/Moscow',
       CASE WHEN NOT %(personalised)s THEN '{}'::jsonb
            WHEN n %% 3 = 0 THEN jsonb_build_object('order', 'A-' || n)
            WHEN n %% 3 = 1 THEN jsonb_build_object('name', 'Anna Petrova', 'order', 'A-' || n)
            ELSE jsonb_build_object('name', 'Анна Петрова', 'order', 'A-' || n) END
FROM generate_series(1, %(count)s) AS n
"""
PLAIN_TEXT = "Benchmark"
PERSONALISED_TEXT = '{{ name | default("клиент") }}, ваш заказ {{ order }} готов'
UNPERSONALISED_TEXT = "Анна Петрова, ваш заказ A-50000 готов"
PARTS_SENT = (
    "SELECT parts, count(*) FROM messages WHERE mailing_id = %(mailing_id)s AND status = 'sent' GROUP BY 1 ORDER BY 1"
)
RECIPIENTS = "SELECT phone, tag, operator_code, timezone, attributes FROM clients ORDER BY id LIMIT %(limit)s"

# Cheap enough to poll without slowing what it measures: an index-only scan of the pending rows.
PENDING = "SELECT count(*) FROM messages WHERE mailing_id = %(mailing_id)s AND status = 'pending'"
PLANNED = "SELECT planned_at IS NOT NULL FROM mailings WHERE id = %(mailing_id)s"
SENT = "SELECT count(*) FROM messages WHERE mailing_id = %(mailing_id)s AND status = 'sent'"
BY_PROVIDER = (
    "SELECT coalesce(provider, '-'), count(*) FROM messages WHERE mailing_id = %(mailing_id)s GROUP BY 1 ORDER BY 1"
)
STORE_PROVIDER = """
INSERT INTO providers (name, kind, settings, window_size, concurrency)
VALUES (%(name)s, %(kind)s, %(settings)s, %(window)s, %(concurrency)s)
"""
STORE_ROUTE = (
    "INSERT INTO provider_routes (position, operator_codes, providers) VALUES (%(position)s, %(codes)s, %(names)s)"
)
SMPP_WINDOW = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--provider-concurrency", type=int, default=200)
    parser.add_argument("--worker-concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: %(default)s)")
    parser.add_argument("--log-level", default="WARNING", help="the services' log level (INFO logs every send)")
    parser.add_argument("--database-url", default=None, help="server to create the throwaway database on")
    parser.add_argument("--timeout-s", type=float, default=600)
    providers_kind = parser.add_mutually_exclusive_group()
    providers_kind.add_argument(
        "--smpp", action="store_true", help=f"send through the fake SMSC (window {SMPP_WINDOW})"
    )
    providers_kind.add_argument(
        "--two-providers", action="store_true", help="two fake HTTP providers, operator codes 900-949 to the second"
    )
    parser.add_argument(
        "--without-counters",
        action="store_true",
        help="turn the message counting triggers off, to compare their cost side by side",
    )
    parser.add_argument(
        "--personalised",
        action="store_true",
        help=f"every client with attributes, the text a template naming them: {PERSONALISED_TEXT}",
    )
    parser.add_argument(
        "--unpersonalised",
        action="store_true",
        help=f"the clients of --personalised, the text without variables: {UNPERSONALISED_TEXT}",
    )
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.personalised and args.unpersonalised:
        parser.error("--personalised and --unpersonalised are the two sides of one comparison: choose one")
    text = PERSONALISED_TEXT if args.personalised else UNPERSONALISED_TEXT if args.unpersonalised else PLAIN_TEXT

    logs = Path(tempfile.mkdtemp(prefix="notification-bench-"))
    with throwaway_database(args.database_url) as settings:
        with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
            with_attributes = args.personalised or args.unpersonalised
            conn.execute(SEED_CLIENTS, {"count": args.clients, "personalised": with_attributes})
            render_us = render_cost_us(conn) if args.personalised else None
            if args.without_counters:
                conn.execute("ALTER TABLE messages DISABLE TRIGGER USER")
            conn.execute("VACUUM ANALYZE clients")
        provider_port, api_port, second_port = free_port(), free_port(), free_port()
        smsc = None
        with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
            if args.smpp:
                smsc = serve_fake_smsc(FakeSmscOptions(latency_ms=args.latency_ms)).start()
                smpp = {"host": "127.0.0.1", "port": smsc.port, "system_id": "bench"}
                store = {"name": "smsc", "kind": "smpp", "settings": Jsonb(smpp), "window": SMPP_WINDOW}
                conn.execute(STORE_PROVIDER, {**store, "concurrency": args.provider_concurrency})
            elif args.two_providers:
                for name, port in (("first", provider_port), ("second", second_port)):
                    url = {"url": f"http://127.0.0.1:{port}/v1"}
                    store = {"name": name, "kind": "http", "settings": Jsonb(url), "window": 10}
                    conn.execute(STORE_PROVIDER, {**store, "concurrency": args.provider_concurrency})
                codes = [str(code) for code in range(900, 950)]
                conn.execute(STORE_ROUTE, {"position": 0, "codes": codes, "names": ["second"]})
        env = service_env(
            settings,
            PROVIDER_URL=f"http://127.0.0.1:{provider_port}/v1",
            SEND_BATCH_SIZE=str(args.batch_size),
            PROVIDER_CONCURRENCY=str(args.provider_concurrency),
            WORKER_CONCURRENCY=str(args.worker_concurrency),
            LOG_LEVEL=args.log_level,
            WORKER_METRICS_PORT="0",
        )
        provider = start(
            [
                python(),
                "-m",
                "notification",
                "fake-provider",
                "--port",
                str(provider_port),
                "--latency-ms",
                str(args.latency_ms),
            ],
            env,
            logs / "provider.log",
        )
        second = None
        if args.two_providers:
            second = start(
                [
                    python(),
                    "-m",
                    "notification",
                    "fake-provider",
                    "--port",
                    str(second_port),
                    "--latency-ms",
                    str(args.latency_ms),
                ],
                env,
                logs / "second-provider.log",
            )
        api = start(
            [python(), "-m", "notification", "serve", "--host", "127.0.0.1", "--port", str(api_port)],
            env,
            logs / "api.log",
        )
        workers = {
            "worker" if args.workers == 1 else f"worker {n}": start(
                [python(), "-m", "procrastinate", "--app=notification.worker.app", "worker"],
                env,
                logs / ("worker.log" if args.workers == 1 else f"worker-{n}.log"),
            )
            for n in range(1, args.workers + 1)
        }
        try:
            wait_http(f"http://127.0.0.1:{provider_port}/_fake/received")
            if second is not None:
                wait_http(f"http://127.0.0.1:{second_port}/_fake/received")
            wait_http(f"http://127.0.0.1:{api_port}/health")
            services = {**workers, "provider": provider, "API": api}
            cpu_before = {name: cpu_seconds(p.pid) for name, p in services.items()}
            busy_before = machine_busy_seconds()
            now = dt.datetime.now(dt.UTC)
            started = time.perf_counter()
            response = httpx.post(
                f"http://127.0.0.1:{api_port}/api/v1/mailings",
                json={
                    "text": text,
                    "kind": "service",
                    "start_at": (now - dt.timedelta(seconds=1)).isoformat(),
                    "end_at": (now + dt.timedelta(hours=1)).isoformat(),
                },
                headers=AUTH_HEADERS,
                timeout=30,
            )
            response.raise_for_status()
            mailing_id = response.json()["id"]
            fan_out_s = None
            deadline = time.monotonic() + args.timeout_s
            params = {"mailing_id": mailing_id}
            with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
                while fan_out_s is None:
                    if conn.execute(PLANNED, params).fetchone() == (True,):
                        fan_out_s = time.perf_counter() - started
                    else:
                        time.sleep(0.02)
                while conn.execute(PENDING, params).fetchone() != (0,):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"not done within {args.timeout_s} s")
                    time.sleep(0.5)
                elapsed = time.perf_counter() - started
                busy = machine_busy_seconds() - busy_before
                cpu = {name: cpu_seconds(p.pid) - cpu_before[name] for name, p in services.items()}
                sent = conn.execute(SENT, params).fetchone()[0]  # type: ignore[index]
                by_provider = conn.execute(BY_PROVIDER, params).fetchall()
                by_parts = conn.execute(PARTS_SENT, params).fetchall()
            rss = [peak_rss_mb(worker.pid) for worker in workers.values()]
            received = httpx.get(f"http://127.0.0.1:{provider_port}/_fake/received", timeout=30).json()
            if smsc is not None:
                submits = smsc.submits()
                received = {
                    "total_requests": len(submits),
                    "total_accepted": sum(1 for s in submits if s.message_id is not None),
                }
            elif second is not None:
                more = httpx.get(f"http://127.0.0.1:{second_port}/_fake/received", timeout=30).json()
                received = {k: received[k] + more[k] for k in ("total_requests", "total_accepted")}
        finally:
            stop(*workers.values(), api, provider, *([second] if second else []))
            if smsc is not None:
                smsc.stop()

    print(f"clients                 {args.clients}")
    print(f"worker processes        {args.workers}")
    print(f"message counters        {'off' if args.without_counters else 'on'}")
    kind = (
        f"smpp (fake SMSC, window {SMPP_WINDOW})"
        if args.smpp
        else "two http, 900-949 to the second"
        if args.two_providers
        else "http"
    )
    print(f"providers               {kind}")
    print(f"provider latency        {args.latency_ms:.0f} ms")
    print(f"fan-out (plan + defer)  {fan_out_s:.2f} s")
    print(f"end to end              {elapsed:.2f} s")
    print(f"messages/s              {args.clients / elapsed:,.0f}")
    print(f"sent                    {sent}")
    print(f"provider requests       {received['total_requests']} (accepted {received['total_accepted']})")
    print(f"messages per provider   {', '.join(f'{name} {count}' for name, count in by_provider)}")
    print(f"text                    {text}")
    print(f"messages by parts       {', '.join(f'{parts} part(s) {count}' for parts, count in by_parts)}")
    if render_us is not None:
        print(f"render + measure        {render_us[0]:.2f} + {render_us[1]:.2f} us/message")
    print(f"worker peak RSS         {', '.join(f'{mb:.0f}' for mb in rss)} MB")
    # Every part shares the same two cores, so CPU time spent anywhere is throughput lost: these
    # vary far less from run to run than the wall clock does.
    rest = busy - sum(cpu.values())
    of_workers = ", ".join(f"{name} {cpu[name]:.1f}" for name in workers)
    print(
        f"CPU seconds             {busy:.1f} in all: {of_workers}, provider {cpu['provider']:.1f},"
        f" API {cpu['API']:.1f}, the rest (PostgreSQL mostly) {rest:.1f}"
    )
    print(f"logs                    {logs}")


def render_cost_us(conn: psycopg.Connection) -> tuple[float, float]:
    """Microseconds per message to render the text and to measure it, over up to 10,000 of the
    clients as the worker claims them (best of three rounds, as the engine's hot path sees it)."""
    from notification.mailings.sms import measure
    from notification.texts.templates import Compiled, Recipient

    rows = conn.execute(RECIPIENTS, {"limit": 10_000}).fetchall()
    recipients = [Recipient(*row) for row in rows]
    compiled = Compiled(PERSONALISED_TEXT)
    texts = [compiled.render(r) for r in recipients]
    render = measured = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for recipient in recipients:
            compiled.render(recipient)
        render = min(render, (time.perf_counter() - started) / len(recipients) * 1e6)
        started = time.perf_counter()
        for text in texts:
            measure(text)
        measured = min(measured, (time.perf_counter() - started) / len(texts) * 1e6)
    return render, measured


if __name__ == "__main__":
    main()
