"""procrastinate tasks of mailings: planning at start_at, and the reconciler that plans any due
mailing whose planning job was never enqueued (the API died between its commit and the defer)."""

from __future__ import annotations

import contextlib
import datetime as dt

import structlog
from procrastinate import App, Blueprint, JobContext, RetryStrategy
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.types import JSONValue
from psycopg import AsyncConnection

from notification.mailings.planning import plan_mailing as plan
from notification.messages.tasks import pool_of, send_messages, settings_of

logger = structlog.get_logger(__name__)

PLAN_QUEUE = "planning"
# The name the worker app registers it under (namespace "mailings").
PLAN_TASK = "mailings:plan_mailing"

blueprint = Blueprint()


def plan_lock(mailing_id: int) -> str:
    return f"mailing-{mailing_id}"


def plan_queueing_lock(mailing_id: int, plan_version: int) -> str:
    return f"plan-mailing-{mailing_id}-v{plan_version}"


@blueprint.task(
    name="plan_mailing",
    queue=PLAN_QUEUE,
    pass_context=True,
    retry=RetryStrategy(max_attempts=20, wait=1, exponential_wait=2),
)
async def plan_mailing(context: JobContext, mailing_id: int, plan_version: int) -> None:
    async def defer_sends(
        conn: AsyncConnection, mailing_id: int, plan_version: int, id_lists: list[list[int]], at: dt.datetime | None
    ) -> None:
        jobs: list[dict[str, JSONValue]] = [
            {"mailing_id": mailing_id, "plan_version": plan_version, "message_ids": list[JSONValue](ids)}
            for ids in id_lists
        ]
        await send_messages.configure(connection=conn, schedule_at=at).batch_defer_async(*jobs)

    async with pool_of(context).connection() as conn:
        await plan(conn, mailing_id, plan_version, settings_of(context).send_batch_size, defer_sends)


async def schedule_planning(job_queue: App, mailing_id: int, plan_version: int, start_at: dt.datetime) -> None:
    """Enqueue the planning of this version at start_at; a twin already waiting is enough."""
    with contextlib.suppress(AlreadyEnqueued):
        await job_queue.configure_task(
            PLAN_TASK,
            schedule_at=start_at,
            lock=plan_lock(mailing_id),
            queueing_lock=plan_queueing_lock(mailing_id, plan_version),
        ).defer_async(mailing_id=mailing_id, plan_version=plan_version)


_UNPLANNED_DUE = """
SELECT id, plan_version, start_at FROM mailings
WHERE start_at <= now() AND end_at > now() AND planned_version < plan_version
"""


@blueprint.periodic(cron="* * * * * */10", periodic_id="reconcile_plans")
@blueprint.task(name="reconcile_plans", queue=PLAN_QUEUE, pass_context=True)
async def reconcile_plans(context: JobContext, timestamp: int) -> int:
    async with pool_of(context).connection() as conn:
        rows = await (await conn.execute(_UNPLANNED_DUE)).fetchall()
    enqueued = 0
    for mailing_id, plan_version, _start_at in rows:
        try:
            await plan_mailing.configure(
                lock=plan_lock(mailing_id), queueing_lock=plan_queueing_lock(mailing_id, plan_version)
            ).defer_async(mailing_id=mailing_id, plan_version=plan_version)
            enqueued += 1
        except AlreadyEnqueued:
            continue
    if enqueued:
        logger.warning("unplanned due mailings enqueued", count=enqueued)
    return enqueued
