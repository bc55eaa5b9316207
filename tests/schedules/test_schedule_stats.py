"""A schedule's statistics are the sum of its occurrences' counters, in the API and the daily report."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import psycopg
import pytest
from procrastinate import App
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.config import Settings
from notification.jobs import create_connector
from notification.reports.content import build_report
from notification.reports.rendering import render_html, render_text
from tests.api import Api, add_clients, database_now
from tests.schedules.test_occurrences import create_schedule, local_minute, look


@pytest.fixture
async def job_queue(settings: Settings) -> AsyncIterator[App]:
    queue = App(connector=create_connector(settings, max_size=2))
    async with queue.open_async():
        yield queue


async def test_schedule_stats_sum_its_occurrences(
    client: Api, db: AsyncSession, settings: Settings, job_queue: App
) -> None:
    clients = await add_clients(client, 3)
    now = await database_now(db)
    schedule = await create_schedule(client, starts=local_minute(now - dt.timedelta(minutes=10)), duration_minutes=30)
    await look(settings, job_queue, lead_s=2.5 * 3600)
    mailing_ids = list(
        await db.scalars(text("SELECT id FROM mailings WHERE schedule_id = :id ORDER BY id"), {"id": schedule["id"]})
    )
    assert len(mailing_ids) == 3
    # Messages laid out directly: the counters follow them by their triggers.
    statuses = {mailing_ids[0]: ["sent", "sent", "failed"], mailing_ids[1]: ["pending", "sent", "expired"]}
    for mailing_id, per_client in statuses.items():
        for c, status in zip(clients, per_client, strict=True):
            await db.execute(
                text("INSERT INTO messages (mailing_id, client_id, status, due_at) VALUES (:m, :c, :s, now())"),
                {"m": mailing_id, "c": c["id"], "s": status},
            )
    await db.commit()

    stats = (await client.get(f"/api/v1/schedules/{schedule['id']}/stats")).json()
    assert stats["occurrences"] == 3
    assert stats["total"] == 6
    assert stats["by_status"] == {"pending": 1, "sent": 3, "failed": 1, "expired": 1, "cancelled": 0}
    per_mailing = {item["mailing_id"]: item["total"] for item in stats["items"]}
    assert per_mailing == {mailing_ids[0]: 3, mailing_ids[1]: 3, mailing_ids[2]: 0}

    async with await psycopg.AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        report = await build_report(conn, now.date(), "UTC", now + dt.timedelta(minutes=1))
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
    that_day = int(
        await db.scalar(
            text("SELECT count(*) FROM mailings WHERE schedule_id = :id AND start_at < :midnight"),
            {"id": schedule["id"], "midnight": midnight},
        )
        or 0
    )
    [day] = report.schedules
    assert (day.schedule_id, day.occurrences_that_day, day.occurrences) == (schedule["id"], that_day, 3)
    assert (day.by_status.sent, day.by_status.failed, day.by_status.pending) == (3, 1, 1)
    assert f"#{schedule['id']} Hourly" in render_text(report)
    assert f"#{schedule['id']} Hourly" in render_html(report)
