"""The daily report's procrastinate task: a tick every minute, on every worker; procrastinate
defers each tick once whatever the number of workers, and :func:`send_due_report` decides, in the
report time zone, whether this tick sends the day's report."""

from __future__ import annotations

import datetime as dt

import structlog
from procrastinate import Blueprint, JobContext

from notification.config import Settings
from notification.jobs import REPORT_QUEUE, pool_of, settings_of
from notification.reports.sending import reports_off_reason, send_due_report

logger = structlog.get_logger(__name__)

blueprint = Blueprint()


@blueprint.periodic(cron="* * * * *", periodic_id="daily_report_tick")
@blueprint.task(name="send_daily_report", queue=REPORT_QUEUE, pass_context=True)
async def send_daily_report(context: JobContext, timestamp: int) -> str:
    outcome = await send_due_report(pool_of(context), settings_of(context), dt.datetime.now(dt.UTC))
    return outcome.value


def daily_report_tasks(settings: Settings) -> Blueprint:
    """The report's tasks for a worker's app; says once, as the worker starts, when reports go out."""
    off = reports_off_reason(settings)
    if off:
        logger.warning("daily report off", reason=off)
    else:
        logger.info(
            "daily report on",
            cron=settings.report_cron,
            timezone=settings.report_timezone,
            recipients=list(settings.report_recipients),
        )
    return blueprint
