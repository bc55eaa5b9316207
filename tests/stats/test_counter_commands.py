"""``notification stats verify`` / ``rebuild`` as an operator runs them, the sends-per-minute series,
and the metrics read from the counters."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import psycopg
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession

from notification.config import PREFIX, Settings
from notification.stats.queries import MinuteSends, sends_per_minute
from tests.api import Api

_ARRANGE = """
WITH c AS (
    INSERT INTO clients (phone, operator_code, timezone)
    SELECT (79700000000 + n)::text, '916', 'UTC' FROM generate_series(1, 6) n RETURNING id
), g AS (
    INSERT INTO mailings (text, encoding, parts, start_at, end_at)
    VALUES ('one', 'GSM-7', 1, now() - interval '2 hours', now() + interval '1 hour'),
           ('two', 'GSM-7', 1, now() - interval '2 hours', now() + interval '1 hour')
    RETURNING id, text
)
INSERT INTO messages (mailing_id, client_id, status, sent_at, attempts, last_error, error_kind)
SELECT g.id, c.id, v.status, %(minute)s + v.offset_s * interval '1 second', v.attempts, v.error, v.kind
FROM g JOIN c ON true
JOIN (VALUES (1, 'sent', 5, 1, NULL, NULL), (2, 'sent', 70, 2, NULL, NULL), (3, 'sent', 75, 1, NULL, NULL),
             (4, 'failed', NULL, 1, 'HTTP 400', 'http_4xx'), (5, 'pending', NULL, 2, 'HTTP 503', 'http_5xx'),
             (6, 'expired', NULL, 3, 'timeout', 'timeout'))
     AS v(n, status, offset_s, attempts, error, kind) ON c.id %% 6 + 1 = v.n
WHERE g.text = 'one' OR c.id %% 6 + 1 <= 2
"""


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env[f"{PREFIX}DATABASE_URL"] = settings.psycopg_conninfo
    return subprocess.run(
        [sys.executable, "-m", "notification", "stats", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _arrange(settings: Settings, minute: dt.datetime) -> dict[str, int]:
    with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        conn.execute(_ARRANGE, {"minute": minute})
        return dict(conn.execute("SELECT text, id FROM mailings").fetchall())  # type: ignore[arg-type]


def test_verify_names_every_difference_and_rebuild_mends_them(settings: Settings) -> None:
    ids = _arrange(settings, dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))
    clean = _run(settings, "verify")
    assert clean.returncode == 0, clean.stderr
    assert "counters match the messages" in clean.stdout

    with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        conn.execute(
            "UPDATE message_counts SET messages = messages + 2 WHERE mailing_id = %s AND status = 'failed'",
            [ids["one"]],
        )
        conn.execute("DELETE FROM message_sends_per_minute WHERE mailing_id = %s", [ids["two"]])
        conn.execute("UPDATE client_counts SET clients = clients - 1")

    broken = _run(settings, "verify")
    assert broken.returncode == 1
    assert f"mailing {ids['one']} failed/http_4xx: counted 3 messages (1 attempts), stored 1 (1 attempts)" in (
        broken.stdout
    )
    assert f"mailing {ids['two']} sends in 2026-12-01 09:01:00+00:00: counted 0" in broken.stdout
    assert "clients: counted 5, stored 6" in broken.stdout
    assert "1 counter(s), 2 minute(s) of sends and 1 client count differ" in broken.stderr

    rebuilt = _run(settings, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "counters rebuilt" in rebuilt.stdout
    assert _run(settings, "verify").returncode == 0


async def test_sends_per_minute_of_one_mailing_and_of_all_with_empty_minutes(
    settings: Settings, db: AsyncSession
) -> None:
    nine = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    ids = _arrange(settings, nine)
    minute = dt.timedelta(minutes=1)

    one = await sends_per_minute(db, since=nine - minute, until=nine + 3 * minute, mailing_id=ids["one"])
    everyone = await sends_per_minute(db, since=nine + dt.timedelta(seconds=30), until=nine + 2 * minute)

    assert one == [
        MinuteSends(nine - minute, 0),
        MinuteSends(nine, 1),
        MinuteSends(nine + minute, 2),
        MinuteSends(nine + 2 * minute, 0),
    ]
    # From the minute `since` falls in; mailing two sent one message in each of the two minutes too.
    assert everyone == [MinuteSends(nine, 2), MinuteSends(nine + minute, 3)]


async def test_metrics_read_statuses_attempts_and_error_kinds_from_the_counters(
    client: Api, settings: Settings
) -> None:
    _arrange(settings, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))

    response = await client.get("/metrics", headers={"Authorization": ""})

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.name.startswith(
            ("notification_messages", "notification_message_errors", "notification_send", "notification_clients")
        )
    }
    assert samples[("notification_messages", (("status", "sent"),))] == 5
    assert samples[("notification_messages", (("status", "failed"),))] == 1
    assert samples[("notification_messages", (("status", "pending"),))] == 1
    assert samples[("notification_messages", (("status", "cancelled"),))] == 0
    assert samples[("notification_send_attempts", ())] == 1 + 2 + 1 + 1 + 2 + 3 + 1 + 2
    assert samples[("notification_message_errors", (("kind", "http_4xx"),))] == 1
    assert samples[("notification_message_errors", (("kind", "http_5xx"),))] == 1
    assert samples[("notification_message_errors", (("kind", "timeout"),))] == 1
    assert samples[("notification_message_errors", (("kind", "malformed"),))] == 0
    assert samples[("notification_clients", ())] == 6
