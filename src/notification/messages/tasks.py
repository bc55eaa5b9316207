"""procrastinate tasks of delivery: sending batches, and the periodic housekeeping that keeps a
crashed worker or a stopped provider from leaving anything behind."""

from __future__ import annotations

import datetime as dt

import structlog
from procrastinate import Blueprint, JobContext, PsycopgConnector, RetryStrategy
from procrastinate.types import JSONValue
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from notification.config import Settings
from notification.messages.delivery import Delivery

logger = structlog.get_logger(__name__)

SEND_QUEUE = "sending"
MAINTENANCE_QUEUE = "maintenance"

blueprint = Blueprint()

# A batch that raised (database gone, worker bug) runs again; its messages stay leased until
# then, so nothing is sent twice meanwhile.
_batch_retry = RetryStrategy(max_attempts=20, wait=1, exponential_wait=2)


def settings_of(context: JobContext) -> Settings:
    settings = context.additional_context.get("settings")
    if not isinstance(settings, Settings):
        msg = "the worker was started without its settings in additional_context"
        raise TypeError(msg)
    return settings


def delivery_of(context: JobContext) -> Delivery:
    delivery = context.additional_context.get("delivery")
    if not isinstance(delivery, Delivery):
        msg = "the worker was started without a Delivery in its additional_context"
        raise TypeError(msg)
    return delivery


def pool_of(context: JobContext) -> AsyncConnectionPool:
    connector = context.app.connector
    if not isinstance(connector, PsycopgConnector):
        msg = "the job queue must use procrastinate's PsycopgConnector"
        raise TypeError(msg)
    return connector.pool


@blueprint.task(name="send_messages", queue=SEND_QUEUE, pass_context=True, retry=_batch_retry)
async def send_messages(context: JobContext, mailing_id: int, plan_version: int, message_ids: list[int]) -> None:
    async def follow_up(
        conn: AsyncConnection, mailing_id: int, plan_version: int, ids: list[int], at: dt.datetime
    ) -> None:
        await send_messages.configure(connection=conn, schedule_at=at).defer_async(
            mailing_id=mailing_id, plan_version=plan_version, message_ids=list[JSONValue](ids)
        )

    report = await delivery_of(context).send_batch(pool_of(context), mailing_id, plan_version, message_ids, follow_up)
    logger.info(
        "batch done",
        mailing_id=mailing_id,
        job_id=context.job.id,
        claimed=report.claimed,
        sent=report.sent,
        failed=report.failed,
        retrying=report.retrying,
        expired=report.expired,
        skipped=report.skipped,
        follow_up_at=report.follow_up_at.isoformat() if report.follow_up_at else None,
    )


# SKIP LOCKED: rows a batch is writing right now are that batch's to settle, or the next sweep's.
_EXPIRE_OVERDUE = """
WITH overdue AS (
    SELECT m.id FROM messages m JOIN mailings g ON g.id = m.mailing_id
    WHERE g.end_at <= now() AND m.status = 'pending'
    ORDER BY m.id
    FOR UPDATE OF m SKIP LOCKED
)
UPDATE messages m
SET status = 'expired', leased_until = NULL,
    last_error = coalesce(m.last_error, 'end_at passed before it could be sent')
FROM overdue WHERE m.id = overdue.id
"""


@blueprint.periodic(cron="* * * * * */10", periodic_id="expire_overdue")
@blueprint.task(name="expire_overdue", queue=MAINTENANCE_QUEUE, pass_context=True)
async def expire_overdue(context: JobContext, timestamp: int) -> int:
    """Settles messages whose mailing ended while no batch was there to see it (worker down)."""
    async with pool_of(context).connection() as conn:
        expired = (await conn.execute(_EXPIRE_OVERDUE)).rowcount
    if expired:
        logger.info("overdue messages expired", count=expired)
    return expired


@blueprint.periodic(cron="* * * * * */10", periodic_id="retry_stalled_jobs")
@blueprint.task(name="retry_stalled_jobs", queue=MAINTENANCE_QUEUE, pass_context=True)
async def retry_stalled_jobs(context: JobContext, timestamp: int) -> int:
    """procrastinate 3 leaves the jobs of a dead worker in 'doing': put them back in the queue."""
    manager = context.app.job_manager
    stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=settings_of(context).stalled_job_after_s)
    count = 0
    for job in stalled:
        await manager.retry_job(job)
        count += 1
        logger.warning("stalled job retried", job_id=job.id, task=job.task_name)
    return count
