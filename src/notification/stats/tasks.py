"""Periodic tasks of the statistics: folding counter shards, and retention."""

from __future__ import annotations

import structlog
from procrastinate import Blueprint, JobContext

from notification.jobs import MAINTENANCE_QUEUE, pool_of, settings_of
from notification.stats.counters import fold_counters as fold
from notification.stats.retention import purge_expired_messages as purge

logger = structlog.get_logger(__name__)

blueprint = Blueprint()


@blueprint.periodic(cron="* * * * *", periodic_id="fold_counters")
@blueprint.task(name="fold_counters", queue=MAINTENANCE_QUEUE, pass_context=True)
async def fold_counters(context: JobContext, timestamp: int) -> int:
    """Keeps the counters at about one row per key, however many shards writers spread them over."""
    async with pool_of(context).connection() as conn:
        removed = await fold(conn)
    if removed:
        logger.info("counter shards folded", rows_removed=removed)
    return removed


@blueprint.periodic(cron="* * * * *", periodic_id="purge_expired_messages")
@blueprint.task(name="purge_expired_messages", queue=MAINTENANCE_QUEUE, pass_context=True)
async def purge_expired_messages(context: JobContext, timestamp: int) -> int:
    days = settings_of(context).message_retention_days
    if days is None:
        return 0
    async with pool_of(context).connection() as conn:
        report = await purge(conn, days)
    if report.mailings_marked or report.messages_deleted:
        logger.info(
            "messages past retention deleted",
            retention_days=days,
            mailings_marked=report.mailings_marked,
            messages_deleted=report.messages_deleted,
            finished=report.finished,
        )
    return report.messages_deleted
