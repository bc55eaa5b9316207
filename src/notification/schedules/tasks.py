"""The worker turns schedules' occurrences into mailings, once a minute, ahead of their start."""

from __future__ import annotations

import datetime as dt

import structlog
from procrastinate import App, Blueprint, JobContext
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from notification.config import Settings
from notification.jobs import MAINTENANCE_QUEUE, settings_of
from notification.mailings.services import MailingService
from notification.schedules.service import OccurrenceReport, ScheduleService, create_due_occurrences

logger = structlog.get_logger(__name__)

blueprint = Blueprint()


async def create_occurrences_now(settings: Settings, job_queue: App) -> OccurrenceReport:
    """One look at every schedule, through the services the API uses (a session of their own)."""
    # A connection per look, once a minute: not worth a pool kept open beside the worker's.
    engine = create_async_engine(settings.sqlalchemy_url, poolclass=NullPool)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            return await create_due_occurrences(
                ScheduleService(session=session),
                MailingService(session=session),
                job_queue,
                dt.timedelta(seconds=settings.schedule_lead_s),
            )
    finally:
        await engine.dispose()


@blueprint.periodic(cron="* * * * *", periodic_id="create_schedule_occurrences")
@blueprint.task(name="create_schedule_occurrences", queue=MAINTENANCE_QUEUE, pass_context=True)
async def create_schedule_occurrences(context: JobContext, timestamp: int) -> int:
    report = await create_occurrences_now(settings_of(context), context.app)
    if report.created or report.skipped:
        logger.info("schedule occurrences looked at", created=len(report.created), skipped=len(report.skipped))
    return len(report.created)
