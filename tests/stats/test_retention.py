"""Retention deletes the messages of mailings ended long enough ago, and nothing else; their
statistics stay as they were."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from notification.config import Settings, load_settings
from notification.stats.counters import rebuild_counters, verify_counters
from notification.stats.retention import purge_expired_messages
from notification.worker import app as worker_app
from tests.api import Api
from tests.problems import assert_problem

# Mailings ended 40 days ago (twice), 10 days ago, one still running, and one ended 40 days ago with a
# message still pending (a worker was down all along): each with a mix of statuses.
_ARRANGE = """
WITH c AS (
    INSERT INTO clients (phone, operator_code, timezone)
    SELECT (79600000000 + n)::text, '916', 'UTC' FROM generate_series(1, 7) n RETURNING id
), g AS (
    INSERT INTO mailings (text, encoding, parts, start_at, end_at)
    SELECT label, 'GSM-7', 1, now() - make_interval(days => ended + 1), now() - make_interval(days => ended)
    FROM (VALUES ('old', 40), ('older', 45), ('recent', 10), ('running', -1), ('stuck', 40)) AS v(label, ended)
    RETURNING id, text
)
INSERT INTO messages (mailing_id, client_id, status, sent_at, attempts, last_error, error_kind)
SELECT g.id, c.id, s.status,
       CASE WHEN s.status = 'sent' THEN now() - interval '40 days' END,
       1,
       CASE WHEN s.status = 'failed' THEN 'HTTP 400' END,
       CASE WHEN s.status = 'failed' THEN 'http_4xx' END
FROM g CROSS JOIN c
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN g.text IN ('running', 'stuck') AND c.id % 7 = 0 THEN 'pending'
        WHEN c.id % 3 = 0 THEN 'failed'
        ELSE 'sent'
    END AS status
) s
RETURNING mailing_id
"""


@pytest.fixture
async def conn(settings: Settings) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as connection:
        yield connection


async def _mailings(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    await conn.execute(_ARRANGE)
    rows = await (await conn.execute("SELECT text, id FROM mailings")).fetchall()
    return dict(rows)


async def _messages_by_mailing(conn: psycopg.AsyncConnection[Any]) -> dict[int, int]:
    rows = await (await conn.execute("SELECT mailing_id, count(*) FROM messages GROUP BY 1")).fetchall()
    return dict(rows)


async def test_retention_deletes_only_old_finished_mailings_messages_and_keeps_their_statistics(
    client: Api, conn: psycopg.AsyncConnection[Any]
) -> None:
    ids = await _mailings(conn)
    old = ids["old"]
    before = (await client.get(f"/api/v1/mailings/{old}/stats")).json()
    overview_before = (await client.get("/api/v1/mailings/stats")).json()
    assert before["by_status"] == {"pending": 0, "sent": 5, "failed": 2, "expired": 0, "cancelled": 0}

    report = await purge_expired_messages(conn, retention_days=30, batch_size=2)

    assert (report.mailings_marked, report.messages_deleted, report.finished) == (2, 14, True)
    assert await _messages_by_mailing(conn) == {ids["recent"]: 7, ids["running"]: 7, ids["stuck"]: 7}
    after = (await client.get(f"/api/v1/mailings/{old}/stats")).json()
    assert (after["total"], after["by_status"]) == (before["total"], before["by_status"])
    assert after["timings"]["first_sent_at"] == before["timings"]["first_sent_at"]
    assert after["timings"]["messages_purged_at"] is not None
    assert after["messages"]["items"] == []
    assert after["messages"]["total"] == 0
    assert (await client.get("/api/v1/mailings/stats")).json() == overview_before
    # What an analyst reads says the same.
    row = await (
        await conn.execute("SELECT total, sent, failed FROM mailing_stats WHERE mailing_id = %s", [old])
    ).fetchone()
    assert row == (7, 5, 2)
    # Purged mailings are left out of verification, and a rebuild keeps their counts.
    assert (await verify_counters(conn)).ok
    await rebuild_counters(conn)
    assert (await client.get("/api/v1/mailings/stats")).json() == overview_before

    # Running it again finds nothing more to do.
    again = await purge_expired_messages(conn, retention_days=30)
    assert (again.mailings_marked, again.messages_deleted) == (0, 0)


async def test_a_purged_mailing_cannot_be_planned_again_but_can_be_renamed_and_deleted(
    client: Api, conn: psycopg.AsyncConnection[Any]
) -> None:
    ids = await _mailings(conn)
    await purge_expired_messages(conn, retention_days=30)
    old = ids["old"]

    response = await client.patch(f"/api/v1/mailings/{old}", json={"filter": {"tags": ["vip"]}})
    assert response.status_code == 409
    problem = response.json()
    assert problem["errors"][0]["field"] == "filter"
    assert "deleted by retention" in problem["errors"][0]["message"]
    assert (await client.get(f"/api/v1/mailings/{old}")).json()["filter"] == {
        "operator_codes": [],
        "tags": [],
        "attributes": {},
    }

    response = await client.patch(f"/api/v1/mailings/{old}", json={"text": "Renamed"})
    assert response.status_code == 200, response.text

    assert (await client.delete(f"/api/v1/mailings/{old}")).status_code == 204
    rows = await (await conn.execute("SELECT count(*) FROM message_counts WHERE mailing_id = %s", [old])).fetchone()
    assert rows == (0,)


async def test_a_purge_out_of_time_goes_on_where_it_stopped(conn: psycopg.AsyncConnection[Any]) -> None:
    ids = await _mailings(conn)

    first = await purge_expired_messages(conn, retention_days=30, budget_s=0, batch_size=1)
    assert (first.mailings_marked, first.messages_deleted, first.finished) == (2, 0, False)
    second = await purge_expired_messages(conn, retention_days=30, batch_size=3)

    assert (second.mailings_marked, second.messages_deleted, second.finished) == (0, 14, True)
    assert set(await _messages_by_mailing(conn)) == {ids["recent"], ids["running"], ids["stuck"]}


def test_the_worker_folds_and_purges_every_minute_and_keeps_messages_unless_told() -> None:
    assert load_settings({}).message_retention_days is None
    assert load_settings({"NOTIFICATION_MESSAGE_RETENTION_DAYS": "30"}).message_retention_days == 30
    with pytest.raises(ValueError, match="at least 1"):
        load_settings({"NOTIFICATION_MESSAGE_RETENTION_DAYS": "0"})
    assert {"stats:purge_expired_messages", "stats:fold_counters"} <= set(worker_app.tasks)
    periodic = {task.task.name for task in worker_app.periodic_registry.periodic_tasks.values()}
    assert {"stats:purge_expired_messages", "stats:fold_counters"} <= periodic


async def test_a_retry_of_a_mailing_whose_messages_retention_deleted_is_a_conflict(
    client: Api, conn: psycopg.AsyncConnection[Any]
) -> None:
    ids = await _mailings(conn)
    await purge_expired_messages(conn, retention_days=30)
    old = ids["old"]
    before = (await client.get(f"/api/v1/mailings/{old}")).json()

    # A retry that would otherwise be accepted: with a new end, the mailing having ended.
    new_end = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    response = await client.post(f"/api/v1/mailings/{old}/retry", json={"statuses": ["failed"], "end_at": new_end})

    problem = assert_problem(response, 409, "statuses")
    assert "deleted by retention" in problem["errors"][0]["message"]
    assert (await client.get(f"/api/v1/mailings/{old}")).json() == before
    audit = await (await conn.execute("SELECT count(*) FROM audit_log WHERE action = 'retry'")).fetchone()
    assert audit == (0,)
