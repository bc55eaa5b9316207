"""Periodic tasks of the receipts: applying the ones that waited for their message id, and the
receipt timeout that marks messages ``unknown``."""

from __future__ import annotations

import structlog
from procrastinate import Blueprint, JobContext

from notification.jobs import MAINTENANCE_QUEUE, pool_of, settings_of
from notification.receipts import store

logger = structlog.get_logger(__name__)

blueprint = Blueprint()

HOUSEKEEPING_PRIORITY = 10


# Every 5 s: the trigger applies a waiting receipt the moment its id is written; this is only for
# the one whose write and storage committed at the same moment, each unseen by the other.
@blueprint.periodic(cron="* * * * * */5", periodic_id="apply_waiting_receipts")
@blueprint.task(
    name="apply_waiting_receipts", queue=MAINTENANCE_QUEUE, pass_context=True, priority=HOUSEKEEPING_PRIORITY
)
async def apply_waiting_receipts(context: JobContext, timestamp: int) -> int:
    async with pool_of(context).connection() as conn:
        applied, decided = await store.apply_waiting(conn)
    if applied:
        logger.info("waiting receipts applied", receipts=applied, messages_decided=len(decided))
    return applied


@blueprint.periodic(cron="* * * * *", periodic_id="receipt_timeout")
@blueprint.task(name="receipt_timeout", queue=MAINTENANCE_QUEUE, pass_context=True, priority=HOUSEKEEPING_PRIORITY)
async def receipt_timeout(context: JobContext, timestamp: int) -> int:
    timeout_s = settings_of(context).receipt_timeout_s
    async with pool_of(context).connection() as conn:
        marked = await store.mark_unknown(conn, timeout_s)
        forgotten = await store.forget_stale(conn, timeout_s)
    if marked or forgotten:
        logger.info("receipt timeout passed", marked_unknown=marked, receipts_forgotten=forgotten, timeout_s=timeout_s)
    return marked
