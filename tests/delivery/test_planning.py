"""Planning a mailing (``delivery/planning.py``), called as the planning task calls it: inside a transaction
of a psycopg connection, on the real database. What it creates, what it leaves alone, what it reschedules,
and that a failure anywhere in the task's transaction leaves nothing behind."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

from psycopg import AsyncConnection

from notification.config import Settings
from notification.delivery.planning import PlanReport, plan_mailing
from notification.delivery.queries import queries
from notification.dev.fake_provider import RunningFakeProvider
from notification.jobs import PLAN_TASK, SEND_TASK
from notification.messages.models import MessageStatus
from tests.api import Api, create_mailing
from tests.delivery.observe import (
    backends_waiting_for_a_lock,
    counts,
    execute,
    insert_clients,
    log_contains,
    rows,
    wait_for_log,
)
from tests.waiting import wait_for
from tests.workers import WorkerProcess

BATCH_SIZE = 4


async def _plan(conninfo: str, mailing_id: int, plan_version: int) -> tuple[PlanReport, dt.datetime]:
    """One planning in a transaction of its own, committed; also the transaction's now()."""
    async with await AsyncConnection.connect(conninfo) as conn, conn.transaction():
        report = await plan_mailing(conn, mailing_id, plan_version, BATCH_SIZE)
        now = (await (await conn.execute("SELECT now()")).fetchone() or [None])[0]
    assert isinstance(now, dt.datetime)
    return report, now


async def _messages(conninfo: str, mailing_id: int) -> dict[int, dict[str, Any]]:
    found = await rows(
        conninfo,
        "SELECT m.id, c.tag, m.status, m.due_at, m.last_error, m.attempts FROM messages m"
        " JOIN clients c ON c.id = m.client_id WHERE m.mailing_id = %(id)s",
        {"id": mailing_id},
    )
    keys = ("tag", "status", "due_at", "last_error", "attempts")
    return {row[0]: dict(zip(keys, row[1:], strict=True)) for row in found}


async def _change(conninfo: str, mailing_id: int, **columns: Any) -> int:
    """A change as the API makes it: new column values and the next plan version, which it returns."""
    assignments = "".join(f"{name} = %({name})s, " for name in columns)
    found = await rows(
        conninfo,
        f"UPDATE mailings SET {assignments}plan_version = plan_version + 1 WHERE id = %(id)s RETURNING plan_version",
        {"id": mailing_id, **columns},
    )
    return int(found[0][0])


def _batched_ids(report: PlanReport) -> list[int]:
    return sorted(i for id_lists in report.send_batches.values() for ids in id_lists for i in ids)


async def test_planning_creates_each_message_once_and_planning_again_creates_nothing(
    client: Api, settings: Settings
) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 10)
    mailing = await create_mailing(client)

    first, now = await _plan(db, mailing["id"], 1)
    assert (first.planned, first.added, first.cancelled, first.expired) == (True, 10, 0, 0)
    messages = await _messages(db, mailing["id"])
    assert len(messages) == 10
    assert {m["status"] for m in messages.values()} == {"pending"}
    assert {m["due_at"] for m in messages.values()} == {now}
    # Every pending message in exactly one batch of at most BATCH_SIZE, all due now.
    assert list(first.send_batches) == [None]
    assert [len(ids) for ids in first.send_batches[None]] == [4, 4, 2]
    assert _batched_ids(first) == sorted(messages)
    assert (await rows(db, "SELECT planned_version FROM mailings WHERE id = %(id)s", {"id": mailing["id"]})) == [(1,)]

    again, _ = await _plan(db, mailing["id"], 1)
    assert (again.planned, again.reason, again.added, again.batches) == (False, "plan superseded or already done", 0, 0)

    # A re-plan that changes nothing adds nothing and cancels nothing; it batches what is still pending.
    version = await _change(db, mailing["id"])
    replanned, _ = await _plan(db, mailing["id"], version)
    assert (replanned.planned, replanned.added, replanned.cancelled) == (True, 0, 0)
    assert _batched_ids(replanned) == sorted(messages)
    assert (await _messages(db, mailing["id"])).keys() == messages.keys()


async def test_a_client_cancelled_by_one_plan_and_matching_the_next_is_planned_again(
    client: Api, settings: Settings
) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 6, tags=["vip", "new"])
    mailing = await create_mailing(client, filter={"operator_codes": [], "tags": ["vip", "new"]})
    await _plan(db, mailing["id"], 1)
    new_ids = sorted(i for i, m in (await _messages(db, mailing["id"])).items() if m["tag"] == "new")

    narrower = await _change(db, mailing["id"], filter_tags=["vip"])
    report, _ = await _plan(db, mailing["id"], narrower)
    assert (report.added, report.cancelled) == (0, 3)
    messages = await _messages(db, mailing["id"])
    assert {i: m["status"] for i, m in messages.items() if i in new_ids} == dict.fromkeys(new_ids, "cancelled")
    assert {messages[i]["last_error"] for i in new_ids} == {"client no longer matches the filter"}
    assert not set(new_ids) & set(_batched_ids(report))

    wider = await _change(db, mailing["id"], filter_tags=["new", "vip"])
    report, now = await _plan(db, mailing["id"], wider)
    assert (report.added, report.cancelled) == (3, 0)
    messages = await _messages(db, mailing["id"])
    assert len(messages) == 6, "the same messages, not new ones"
    assert {(messages[i]["status"], messages[i]["last_error"], messages[i]["due_at"]) for i in new_ids} == {
        ("pending", None, now)
    }
    assert _batched_ids(report) == sorted(messages)


async def test_a_re_plan_makes_overdue_and_window_waiting_messages_due_now_and_keeps_retry_backoffs(
    client: Api, settings: Settings
) -> None:
    db = settings.psycopg_conninfo
    # Five: the four due now fill one batch, the one waiting for its retry is a batch of its own.
    await insert_clients(db, 5)
    mailing = await create_mailing(client)
    await _plan(db, mailing["id"], 1)
    overdue, retrying, waiting, *untouched = sorted(await _messages(db, mailing["id"]))
    retry_at = (await rows(db, "SELECT date_trunc('second', now()) + interval '10 minutes'"))[0][0]
    await rows(
        db,
        "UPDATE messages SET due_at = CASE id"
        "   WHEN %(overdue)s THEN now() - interval '10 minutes'"
        "   WHEN %(waiting)s THEN now() + interval '20 minutes'"
        "   ELSE %(retry_at)s END,"
        " last_error = CASE WHEN id = %(retrying)s THEN 'HTTP 503' END,"
        " attempts = CASE WHEN id = %(retrying)s THEN 1 ELSE 0 END"
        " WHERE id IN (%(overdue)s, %(retrying)s, %(waiting)s) RETURNING id",
        {"overdue": overdue, "retrying": retrying, "waiting": waiting, "retry_at": retry_at},
    )

    # A change of times: overdue messages are due from now on, one waiting for a window that no longer
    # exists is due now, one waiting for its retry keeps its backoff and its batch waits for it.
    version = await _change(db, mailing["id"], end_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2))
    report, now = await _plan(db, mailing["id"], version)
    messages = await _messages(db, mailing["id"])
    assert messages[overdue]["due_at"] == now
    assert messages[waiting]["due_at"] == now
    assert (messages[retrying]["due_at"], messages[retrying]["last_error"]) == (retry_at, "HTTP 503")
    assert {messages[i]["due_at"] for i in untouched} == {now}
    assert report.send_batches[retry_at] == [[retrying]]
    assert sorted(i for ids in report.send_batches[None] for i in ids) == sorted([overdue, waiting, *untouched])


async def test_a_superseded_or_missing_or_early_plan_does_nothing(client: Api, settings: Settings) -> None:
    db = settings.psycopg_conninfo
    await insert_clients(db, 5)
    mailing = await create_mailing(client)
    version = await _change(db, mailing["id"], filter_tags=["vip"])
    assert version == 2

    stale, _ = await _plan(db, mailing["id"], 1)
    assert (stale.planned, stale.reason, stale.batches) == (False, "plan superseded or already done", 0)
    assert await _messages(db, mailing["id"]) == {}
    assert (await rows(db, "SELECT planned_version FROM mailings WHERE id = %(id)s", {"id": mailing["id"]})) == [(0,)]

    future = await create_mailing(
        client,
        start_at=(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat(),
        end_at=(dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat(),
    )
    early, _ = await _plan(db, future["id"], 1)
    assert (early.planned, early.reason) == (False, "not due yet")
    assert await _messages(db, future["id"]) == {}

    gone, _ = await _plan(db, 987_654, 1)
    assert (gone.planned, gone.reason) == (False, "mailing deleted")


_REFUSE_SEND_JOBS = (
    """
    CREATE FUNCTION test_refuse_send_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'send jobs refused by the test';
    END $$
    """,
    f"""
    CREATE TRIGGER test_refuse_send_jobs BEFORE INSERT ON procrastinate_jobs FOR EACH ROW
    WHEN (NEW.task_name = '{SEND_TASK}') EXECUTE FUNCTION test_refuse_send_jobs()
    """,
)


async def test_a_planning_whose_send_jobs_cannot_be_deferred_leaves_nothing_and_is_retried(
    client: Api, settings: Settings, fake_provider: RunningFakeProvider, start_worker: Callable[..., WorkerProcess]
) -> None:
    """The real planning task: its messages, its send jobs and the mark that the plan is done commit together.
    The deferral of the send jobs (the task's last step) fails: none of the rest stays."""
    db = settings.psycopg_conninfo
    await insert_clients(db, 50)
    for statement in _REFUSE_SEND_JOBS:
        await execute(db, statement)
    worker = start_worker()
    mailing = await create_mailing(client)
    await wait_for_log(worker, "send jobs refused by the test")

    assert await counts(db, mailing["id"]) == dict.fromkeys([s.value for s in MessageStatus], 0)
    assert (await rows(db, "SELECT planned_version FROM mailings WHERE id = %(id)s", {"id": mailing["id"]})) == [(0,)]
    jobs = await rows(
        db,
        "SELECT task_name, status FROM procrastinate_jobs WHERE task_name IN (%(plan)s, %(send)s)",
        {"plan": PLAN_TASK, "send": SEND_TASK},
    )
    # The planning waits for its retry (or is retrying, and failing again); no send job exists.
    assert [task for task, _ in jobs] == [PLAN_TASK]

    await execute(db, "DROP TRIGGER test_refuse_send_jobs ON procrastinate_jobs")
    await wait_for(lambda: counts(db, mailing["id"]), lambda c: c["sent"] == 50, timeout_s=60)
    assert fake_provider.received().total_requests == 50
    assert log_contains(worker, '"event": "mailing planned"')


async def test_a_re_plan_and_a_batch_writing_its_answers_at_once_do_not_deadlock(
    client: Api, settings: Settings
) -> None:
    """A batch writes its answers locking its messages in id order; a re-plan that cancels clients no longer
    matching must not take the rows in another order, or PostgreSQL aborts one of them (answers lost, or
    the plan retried)."""
    db = settings.psycopg_conninfo
    await insert_clients(db, 10, tags=["vip", "new"])
    mailing = await create_mailing(client, filter={"operator_codes": [], "tags": ["vip", "new"]})
    await _plan(db, mailing["id"], 1)
    messages = await _messages(db, mailing["id"])
    first_new = min(i for i, m in messages.items() if m["tag"] == "new")
    last_vip = max(i for i, m in messages.items() if m["tag"] == "vip")
    assert first_new < last_vip
    version = await _change(db, mailing["id"], filter_tags=["vip"])

    async with await AsyncConnection.connect(db) as batch:
        # The batch has locked the first of its messages when the re-plan starts...
        await batch.execute("SELECT id FROM messages WHERE id = %(id)s FOR UPDATE", {"id": first_new})
        planning = asyncio.create_task(_plan(db, mailing["id"], version))
        await wait_for(lambda: backends_waiting_for_a_lock(db), lambda n: n == 1)
        # ...and goes on to the next one, as record_answers does, then commits.
        await batch.execute(
            queries["record_answers"],
            {
                "ids": [first_new, last_vip],
                "statuses": ["sent", "sent"],
                "errors": [None, None],
                "error_kinds": [None, None],
                "due_ats": [None, None],
                "answered_ats": [dt.datetime.now(dt.UTC)] * 2,
                "providers": [None] * 2,
                "provider_message_ids": [None] * 2,
                "encodings": [None] * 2,
                "parts": [None] * 2,
                "unattempted": [False, False],
            },
        )
        await batch.commit()
    report, _ = await asyncio.wait_for(planning, timeout=30)

    assert report.planned
    assert report.cancelled == 4, "every client no longer matching but the one the batch sent"
    after = await _messages(db, mailing["id"])
    assert (after[first_new]["status"], after[last_vip]["status"]) == ("sent", "sent")
