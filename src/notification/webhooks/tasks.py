"""The worker's webhook tasks: delivering the outbox, and forgetting events past their retention.

Delivery is a periodic job of the ``webhooks`` queue, due every second, that runs while there is
something to post (at most ``RUN_S``, plus the requests then in flight). Its lock lets one run at
a time among every worker, and its queueing lock keeps one more waiting at most: a run that takes
long never piles jobs up. A worker started with ``--queues webhooks`` alone takes it off the
sending workers entirely."""

from __future__ import annotations

import asyncio

import structlog
from procrastinate import Blueprint, JobContext

from notification.jobs import (
    MAINTENANCE_QUEUE,
    WEBHOOK_DISPATCH_LOCK,
    WEBHOOK_QUEUE,
    context_value,
    pool_of,
    settings_of,
)
from notification.webhooks.dispatch import Dispatcher, prune

logger = structlog.get_logger(__name__)

blueprint = Blueprint()

RUN_S = 10.0
"""How long one run keeps claiming: long enough to amortise its start, short enough to let another
worker take over soon after this one stops."""


@blueprint.periodic(cron="* * * * * *", periodic_id="deliver_webhooks")
@blueprint.task(
    name="deliver_webhooks",
    queue=WEBHOOK_QUEUE,
    pass_context=True,
    lock=WEBHOOK_DISPATCH_LOCK,
    queueing_lock=WEBHOOK_DISPATCH_LOCK,
)
async def deliver_webhooks(context: JobContext, timestamp: int) -> int:
    stopping = context_value(context, "stopping", asyncio.Event)
    report = await Dispatcher(settings_of(context), pool_of(context)).run(RUN_S, stopping)
    if report.delivered or report.failed:
        logger.info(
            "webhooks delivered",
            delivered=report.delivered,
            failed=report.failed,
            disabled=report.disabled,
        )
    return report.delivered


@blueprint.periodic(cron="* * * * *", periodic_id="prune_webhook_outbox")
@blueprint.task(name="prune_webhook_outbox", queue=MAINTENANCE_QUEUE, pass_context=True)
async def prune_webhook_outbox(context: JobContext, timestamp: int) -> int:
    removed = await prune(pool_of(context), settings_of(context).webhook_retention_s)
    if removed:
        logger.info("webhook events past retention deleted", count=removed)
    return removed
