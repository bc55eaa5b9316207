"""The engine's procrastinate tasks: planning a mailing, sending a batch, and the periodic
housekeeping that keeps a killed worker or a stopped provider from leaving anything behind.

Each task owns its transaction: planning and the deferral of its send jobs commit together, and
so do a batch's last answers and the deferral of its follow-up.
"""

from __future__ import annotations

import structlog
from procrastinate import Blueprint, JobContext, RetryStrategy
from procrastinate.exceptions import UniqueViolation
from procrastinate.jobs import Status
from procrastinate.types import JSONValue
from psycopg_pool import AsyncConnectionPool

from notification.delivery import planning
from notification.delivery.batch import TEXT_NOW_PERSONALISED
from notification.delivery.queries import queries
from notification.delivery.sending import Delivery
from notification.delivery.watcher import DATABASE_UNREACHABLE
from notification.jobs import (
    MAINTENANCE_QUEUE,
    PLAN_LOCK_PREFIX,
    PLAN_QUEUE,
    SEND_QUEUE,
    context_value,
    pool_of,
    schedule_planning,
    settings_of,
)

logger = structlog.get_logger(__name__)

blueprint = Blueprint()

# A job that raised (database gone, worker bug) runs again; a batch's messages stay leased
# until then, so nothing is sent twice meanwhile.
_retry = RetryStrategy(max_attempts=20, wait=1, exponential_wait=2)

# A worker takes jobs by priority, then in the order they were deferred. Housekeeping deferred
# now must not wait behind a backlog of send batches (a dead worker's jobs would stay stalled
# until the queue drained), and a follow-up carries messages older than any batch still queued.
HOUSEKEEPING_PRIORITY = 10
FOLLOW_UP_PRIORITY = 1


def delivery_of(context: JobContext) -> Delivery:
    return context_value(context, "delivery", Delivery)


@blueprint.task(name="plan_mailing", queue=PLAN_QUEUE, pass_context=True, retry=_retry)
async def plan_mailing(context: JobContext, mailing_id: int, plan_version: int) -> None:
    async with pool_of(context).connection() as conn, conn.transaction():
        report = await planning.plan_mailing(conn, mailing_id, plan_version, settings_of(context).send_batch_size)
        for at, id_lists in report.send_batches.items():
            jobs: list[dict[str, JSONValue]] = [
                {"mailing_id": mailing_id, "plan_version": plan_version, "message_ids": list[JSONValue](ids)}
                for ids in id_lists
            ]
            await send_messages.configure(connection=conn, schedule_at=at).batch_defer_async(*jobs)
    logger.info(
        "mailing planned" if report.planned else "mailing not planned",
        mailing_id=mailing_id,
        plan_version=plan_version,
        reason=report.reason,
        added=report.added,
        cancelled=report.cancelled,
        expired=report.expired,
        delayed=report.delayed,
        left_out_suppressed=report.left_out_suppressed,
        left_out_no_consent=report.left_out_no_consent,
        batches=report.batches,
    )


@blueprint.task(name="send_messages", queue=SEND_QUEUE, pass_context=True, retry=_retry)
async def send_messages(context: JobContext, mailing_id: int, plan_version: int, message_ids: list[int]) -> None:
    delivery = delivery_of(context)
    async with pool_of(context).connection() as conn:
        report = await delivery.send_batch(conn, mailing_id, plan_version, message_ids)
        # A batch that ran to its end (not skipped), or stopped only because the database was out
        # of reach or its text now needs attributes the claim did not read, hands what is still
        # pending to a follow-up job, deferred in the transaction that settles the rest. One
        # stopped because its mailing was deleted or re-planned leaves its messages to the new plan.
        if report.end_at is not None and report.stopped in (None, DATABASE_UNREACHABLE, TEXT_NOW_PERSONALISED):
            async with conn.transaction():
                follow_up = await delivery.follow_up(conn, message_ids, report.end_at)
                if follow_up is not None:
                    await send_messages.configure(
                        connection=conn, schedule_at=follow_up.at, priority=FOLLOW_UP_PRIORITY
                    ).defer_async(
                        mailing_id=mailing_id,
                        plan_version=plan_version,
                        message_ids=list[JSONValue](follow_up.message_ids),
                    )
                    report.follow_up_at = follow_up.at
    logger.info(
        "batch done",
        mailing_id=mailing_id,
        job_id=context.job.id,
        claimed=report.claimed,
        sent=report.sent,
        failed=report.failed,
        retrying=report.retrying,
        expired=report.expired,
        unsent=report.unsent,
        stopped=report.stopped,
        skipped=report.skipped,
        follow_up_at=report.follow_up_at.isoformat() if report.follow_up_at else None,
    )
    if report.claimed and report.follow_up_at is None and report.stopped is None:
        await _say_when_finished(pool_of(context), mailing_id)


async def _say_when_finished(pool: AsyncConnectionPool, mailing_id: int) -> None:
    """The line a person watching the terminal waits for. Two last batches ending at the same
    moment may each say it: the line informs, nothing depends on it."""
    async with pool.connection() as conn:
        row = await (await conn.execute(queries["mailing_has_pending"], {"mailing_id": mailing_id})).fetchone()
    if row is not None and not row[0]:
        logger.info("mailing finished: nothing left to send", mailing_id=mailing_id)


@blueprint.periodic(cron="* * * * * */5", periodic_id="expire_overdue")
@blueprint.task(name="expire_overdue", queue=MAINTENANCE_QUEUE, pass_context=True, priority=HOUSEKEEPING_PRIORITY)
async def expire_overdue(context: JobContext, timestamp: int) -> int:
    """Settles messages whose mailing ended while no batch was there to see it (worker down)."""
    async with pool_of(context).connection() as conn:
        expired = (await conn.execute(queries["expire_overdue"])).rowcount
    if expired:
        logger.info("overdue messages expired", count=expired)
    return expired


# Every 2 s: with the default heartbeat and lease, a dead worker's jobs are back in the queue
# about when its leases run out (10 s), and sending resumes within 15 s of the kill.
@blueprint.periodic(cron="* * * * * */2", periodic_id="retry_stalled_jobs")
@blueprint.task(name="retry_stalled_jobs", queue=MAINTENANCE_QUEUE, pass_context=True, priority=HOUSEKEEPING_PRIORITY)
async def retry_stalled_jobs(context: JobContext, timestamp: int) -> int:
    """procrastinate 3 leaves the jobs of a dead worker in 'doing': put them back in the queue.

    Each job on its own: one that cannot be retried is logged and the sweep goes on. A dead job
    whose twin already waits in the queue under the same queueing lock cannot go back there; the
    twin does its work, and the dead one is closed as failed."""
    manager = context.app.job_manager
    stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=settings_of(context).stalled_job_after_s)
    retried = 0
    for job in stalled:
        log = logger.bind(job_id=job.id, task=job.task_name)
        try:
            await manager.retry_job(job)
        except UniqueViolation:
            await manager.finish_job(job, status=Status.FAILED, delete_job=False)
            log.warning("stalled job closed: its queued twin runs instead")
        except Exception:
            log.exception("stalled job could not be retried")
        else:
            retried += 1
            log.warning("stalled job retried")
    return retried


@blueprint.periodic(cron="* * * * * */10", periodic_id="reconcile_plans")
@blueprint.task(name="reconcile_plans", queue=PLAN_QUEUE, pass_context=True, priority=HOUSEKEEPING_PRIORITY)
async def reconcile_plans(context: JobContext, timestamp: int) -> int:
    """Plans any due mailing whose planning job was never enqueued (the API died between its
    commit and the defer). Never beside a planning job already queued or running."""
    async with pool_of(context).connection() as conn:
        rows = await (
            await conn.execute(queries["unplanned_due_mailings"], {"plan_lock_prefix": PLAN_LOCK_PREFIX})
        ).fetchall()
    enqueued = 0
    for mailing_id, plan_version in rows:
        if await schedule_planning(context.app, mailing_id, plan_version):
            enqueued += 1
    if enqueued:
        logger.warning("unplanned due mailings enqueued", count=enqueued)
    return enqueued
