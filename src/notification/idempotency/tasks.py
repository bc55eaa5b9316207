"""The worker forgets idempotency keys once they are past their retention."""

from __future__ import annotations

import structlog
from procrastinate import Blueprint, JobContext

from notification.idempotency.store import FORGET_EXPIRED, KEPT_HOURS
from notification.jobs import MAINTENANCE_QUEUE, pool_of

logger = structlog.get_logger(__name__)

blueprint = Blueprint()


@blueprint.periodic(cron="17 * * * *", periodic_id="forget_idempotency_keys")
@blueprint.task(name="forget_idempotency_keys", queue=MAINTENANCE_QUEUE, pass_context=True)
async def forget_idempotency_keys(context: JobContext, timestamp: int) -> int:
    async with pool_of(context).connection() as conn:
        forgotten = (await conn.execute(FORGET_EXPIRED, {"kept_hours": KEPT_HOURS})).rowcount
    if forgotten:
        logger.info("idempotency keys forgotten", count=forgotten)
    return forgotten
