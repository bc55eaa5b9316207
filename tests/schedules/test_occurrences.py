"""Occurrences become mailings: ahead of their start, once each, with the stated catch-up rule
after a worker was down, and untouched by a later edit of their schedule."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from procrastinate import App
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.config import Settings
from notification.jobs import create_connector
from notification.schedules.service import OccurrenceReport
from notification.schedules.tasks import create_occurrences_now
from tests.api import MAILINGS, Api, add_clients, database_now
from tests.waiting import wait_for
from tests.workers import WorkerProcess

SCHEDULES = "/api/v1/schedules"
OCCURRENCE_TASK = "schedules:create_schedule_occurrences"
MOSCOW = ZoneInfo("Europe/Moscow")


@pytest.fixture
async def job_queue(settings: Settings) -> AsyncIterator[App]:
    queue = App(connector=create_connector(settings, max_size=2))
    async with queue.open_async():
        yield queue


def local_minute(instant: dt.datetime) -> str:
    return instant.astimezone(MOSCOW).replace(second=0, microsecond=0, tzinfo=None).isoformat(timespec="minutes")


async def create_schedule(api: Api, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "Hourly",
        "text": "Deals",
        "rrule": "FREQ=HOURLY",
        "kind": "service",
        "timezone": "Europe/Moscow",
        **fields,
    }
    response = await api.post(SCHEDULES, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def occurrences(db: AsyncSession, schedule_id: int) -> list[tuple[int, dt.datetime, dt.datetime, str]]:
    rows = await db.execute(
        text("SELECT id, occurrence_at, end_at, text FROM mailings WHERE schedule_id = :id ORDER BY occurrence_at, id"),
        {"id": schedule_id},
    )
    found = [(r.id, r.occurrence_at, r.end_at, r.text) for r in rows]
    await db.rollback()
    return found


async def look(settings: Settings, job_queue: App, lead_s: float = 600.0) -> OccurrenceReport:
    return await create_occurrences_now(replace(settings, schedule_lead_s=lead_s), job_queue)


async def test_after_downtime_a_recent_occurrence_still_runs_and_older_ones_are_skipped(
    client: Api, db: AsyncSession, settings: Settings, job_queue: App, caplog: pytest.LogCaptureFixture
) -> None:
    now = await database_now(db)
    # Hourly from 2.5 h ago, each lasting an hour: two ended while no worker ran, one began 30
    # minutes ago and still has 30 to go, the next begins in 30 minutes (after the lead).
    first = now - dt.timedelta(minutes=150)
    schedule = await create_schedule(client, starts=local_minute(first), duration_minutes=60)
    # The last look before the outage was three hours ago.
    await db.execute(
        text("UPDATE schedules SET considered_until = now() - interval '3 hours' WHERE id = :id"),
        {"id": schedule["id"]},
    )
    await db.commit()

    report = await look(settings, job_queue)

    made = await occurrences(db, schedule["id"])
    assert len(made) == 1
    mailing_id, occurrence_at, end_at, _ = made[0]
    started = first.replace(second=0, microsecond=0) + dt.timedelta(hours=2)
    assert occurrence_at == started
    assert end_at == started + dt.timedelta(hours=1)  # its original end, not an hour from now
    assert [at for _, at in report.skipped] == [started - dt.timedelta(hours=2), started - dt.timedelta(hours=1)]
    mailing = (await client.get(f"{MAILINGS}/{mailing_id}")).json()
    assert mailing["status"] == "running"
    assert mailing["schedule_id"] == schedule["id"]
    # Planned the way the API plans a mailing it creates: a planning job for it is queued.
    queued = await db.scalar(
        text(
            "SELECT count(*) FROM procrastinate_jobs"
            " WHERE task_name = 'delivery:plan_mailing' AND args->>'mailing_id' = :id"
        ),
        {"id": str(mailing_id)},
    )
    await db.rollback()
    assert queued == 1

    # A second look creates nothing more, and skips nothing again.
    again = await look(settings, job_queue)
    assert again.created == []
    assert again.skipped == []
    assert len(await occurrences(db, schedule["id"])) == 1


async def test_an_occurrence_missed_by_more_than_its_duration_is_skipped(
    client: Api, db: AsyncSession, settings: Settings, job_queue: App
) -> None:
    now = await database_now(db)
    # Began 40 minutes ago, lasts 30: it would have ended 10 minutes ago.
    schedule = await create_schedule(
        client, starts=local_minute(now - dt.timedelta(minutes=40)), duration_minutes=30, rrule="FREQ=DAILY"
    )
    await db.execute(
        text("UPDATE schedules SET considered_until = now() - interval '1 hour' WHERE id = :id"), {"id": schedule["id"]}
    )
    await db.commit()
    report = await look(settings, job_queue)
    assert len(report.skipped) == 1
    assert await occurrences(db, schedule["id"]) == []


async def test_editing_a_schedule_leaves_the_running_occurrence_alone(
    client: Api, db: AsyncSession, settings: Settings, job_queue: App
) -> None:
    now = await database_now(db)
    schedule = await create_schedule(client, starts=local_minute(now - dt.timedelta(minutes=10)), duration_minutes=30)
    await look(settings, job_queue, lead_s=7200)
    before = await occurrences(db, schedule["id"])
    assert [t for *_, t in before] == ["Deals", "Deals", "Deals"]  # running, +50 min, +110 min
    running_id = before[0][0]

    edited = await client.patch(f"{SCHEDULES}/{schedule['id']}", json={"text": "New deals", "duration_minutes": 20})
    assert edited.status_code == 200, edited.text
    await look(settings, job_queue, lead_s=3 * 3600)

    after = await occurrences(db, schedule["id"])
    # Those created before the edit stay as they were; the one created after it takes the change.
    assert after[:3] == before
    assert [(t, end - at) for _, at, end, t in after[3:]] == [("New deals", dt.timedelta(minutes=20))]
    running = (await client.get(f"{MAILINGS}/{running_id}")).json()
    assert running["text"] == "Deals"


async def test_deleting_a_schedule_keeps_its_created_occurrences(
    client: Api, db: AsyncSession, settings: Settings, job_queue: App
) -> None:
    now = await database_now(db)
    schedule = await create_schedule(client, starts=local_minute(now + dt.timedelta(minutes=5)), duration_minutes=30)
    await look(settings, job_queue)
    [(mailing_id, *_)] = await occurrences(db, schedule["id"])
    assert (await client.delete(f"{SCHEDULES}/{schedule['id']}")).status_code == 204
    kept = (await client.get(f"{MAILINGS}/{mailing_id}")).json()
    assert kept["schedule_id"] is None
    assert (await look(settings, job_queue, lead_s=86400)).created == []


async def test_a_paused_schedule_creates_nothing_and_does_not_catch_up(
    client: Api, db: AsyncSession, settings: Settings, job_queue: App
) -> None:
    now = await database_now(db)
    schedule = await create_schedule(client, starts=local_minute(now + dt.timedelta(minutes=5)), duration_minutes=30)
    await client.post(f"{SCHEDULES}/{schedule['id']}/pause")
    assert (await look(settings, job_queue)).created == []
    await client.post(f"{SCHEDULES}/{schedule['id']}/resume")
    assert len((await look(settings, job_queue)).created) == 1


async def test_two_worker_processes_never_create_one_occurrence_twice(
    client: Api,
    db: AsyncSession,
    job_queue: App,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    now = await database_now(db)
    ids = [
        (
            await create_schedule(
                client, name=f"s{i}", starts=local_minute(now + dt.timedelta(minutes=2)), duration_minutes=30
            )
        )["id"]
        for i in range(4)
    ]
    # A day of hourly occurrences each: 4 x 24 mailings, for both workers to race on.
    workers = [start_worker(SCHEDULE_LEAD_S=str(24 * 3600 - 60), WORKER_CONCURRENCY="4") for _ in range(2)]
    for worker in workers:
        await worker.ready(timeout_s=120)
    for _ in range(16):
        await job_queue.configure_task(OCCURRENCE_TASK).defer_async(timestamp=0)

    async def looks_done() -> tuple[int, int]:
        row = (
            await db.execute(
                text(
                    "SELECT count(*) FILTER (WHERE status IN ('todo', 'doing')),"
                    " count(*) FILTER (WHERE status = 'failed')"
                    " FROM procrastinate_jobs WHERE task_name = :task"
                ),
                {"task": OCCURRENCE_TASK},
            )
        ).one()
        await db.rollback()
        return int(row[0]), int(row[1])

    await wait_for(looks_done, lambda counts: counts[0] == 0, timeout_s=90)
    assert (await looks_done())[1] == 0
    ran_by = {w.process.pid for w in workers if any("schedule occurrence created" in line for line in w.log_lines())}
    assert ran_by, "no worker created an occurrence"
    rows = (
        await db.execute(
            text(
                "SELECT schedule_id, count(*) AS mailings, count(DISTINCT occurrence_at) AS occurrences"
                " FROM mailings WHERE schedule_id = ANY(:ids) GROUP BY schedule_id ORDER BY schedule_id"
            ),
            {"ids": ids},
        )
    ).all()
    await db.rollback()
    assert [(r.mailings, r.occurrences) for r in rows] == [(24, 24)] * 4


async def test_each_occurrence_of_an_audience_gets_who_matched_at_its_planning(
    client: Api,
    db: AsyncSession,
    job_queue: App,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    early = await add_clients(client, 2, tag="vip")
    audience = (await client.post("/api/v1/audiences", json={"name": "VIP", "filter": {"tags": ["vip"]}})).json()
    worker = start_worker()
    await worker.ready(timeout_s=120)
    now = (await database_now(db)).replace(microsecond=0)
    # Two occurrences a minute apart: one begun 40 s ago (planned at once), one 20 s from now
    # (planned then).
    first_at = now - dt.timedelta(seconds=40)
    second_at = first_at + dt.timedelta(minutes=1)
    rule = f"FREQ=HOURLY;BYMINUTE={first_at.minute},{second_at.minute};BYSECOND={first_at.second};COUNT=2"
    starts = first_at.astimezone(MOSCOW).replace(tzinfo=None).isoformat()
    schedule = await create_schedule(client, starts=starts, rrule=rule, duration_minutes=30, audience_id=audience["id"])
    await job_queue.configure_task(OCCURRENCE_TASK).defer_async(timestamp=0)

    async def recipients(mailing_id: int) -> set[int]:
        rows = await db.scalars(text("SELECT client_id FROM messages WHERE mailing_id = :id"), {"id": mailing_id})
        found = set(rows)
        await db.rollback()
        return found

    made = await wait_for(lambda: occurrences(db, schedule["id"]), lambda found: len(found) == 2)
    assert [at for _, at, *_ in made] == [first_at, second_at]
    first_id, second_id = made[0][0], made[1][0]
    first = await wait_for(lambda: recipients(first_id), lambda found: len(found) == 2)
    assert first == {c["id"] for c in early}
    assert await recipients(second_id) == set()  # not planned before its start

    # Between the two occurrences the directory changes: one client leaves the tag, two join it.
    await client.patch(f"/api/v1/clients/{early[0]['id']}", json={"tag": "former"})
    late = await add_clients(client, 2, tag="vip")

    second = await wait_for(lambda: recipients(second_id), lambda found: len(found) == 3, timeout_s=90)
    assert second == {early[1]["id"], *(c["id"] for c in late)}
    assert await recipients(first_id) == first
