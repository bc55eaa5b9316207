"""Sending a report: now, for an operator (``notification report send``), or as the day's scheduled
report, exactly once whichever worker gets there first.

The schedule reads ``NOTIFICATION_REPORT_CRON`` on the report time zone's clock. procrastinate
evaluates a periodic task's cron in UTC, so the worker only ticks (every minute) and this module
decides whether a report is due: the day's latest cron occurrence has passed, today in the report
time zone, and the previous day's report was not sent. A report whose moment passed while no
worker ran is therefore sent by the first tick after one starts, until midnight.

The day's row in ``report_deliveries`` is the single record of that report: created once, leased
by the one worker talking to the SMTP server, and carrying the retry schedule across workers and
restarts. A temporary failure (no answer, a 4xx reply) schedules the next attempt with capped
exponential backoff; a 5xx reply marks it failed, never retried, logged with the reply."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

import structlog
from croniter import croniter
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from notification.config import PREFIX, Settings
from notification.reports.content import DailyReport, build_report
from notification.reports.queries import statements
from notification.reports.rendering import compose, scheduled_message_id
from notification.reports.smtp import SmtpFailure, parse_smtp_url, send_email

logger = structlog.get_logger(__name__)


def attempt_lease(settings: Settings) -> dt.timedelta:
    """Past this, a worker that claimed an attempt is presumed dead and another may try: longer
    than the slowest exchange the SMTP timeout lets through (connect, STARTTLS, AUTH, DATA)."""
    return dt.timedelta(seconds=4 * settings.smtp_timeout_s)


class Outcome(StrEnum):
    OFF = "off"  # no recipients or no SMTP server configured
    NOT_DUE = "not due"
    BUSY = "busy"  # already sent, failed for good, leased by another worker, or waiting to retry
    SENT = "sent"
    RETRYING = "retrying"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SentReport:
    report: DailyReport
    recipients: list[str]
    refused: list[str]


def reports_off_reason(settings: Settings) -> str | None:
    if not settings.report_recipients:
        return f"{PREFIX}REPORT_RECIPIENTS is empty"
    if not settings.smtp_url:
        return f"{PREFIX}SMTP_URL is not set"
    return None


def due_report_day(cron: str, timezone: str, now: dt.datetime) -> dt.date | None:
    """The day whose report is due at ``now``: the day before the latest cron occurrence on the
    report time zone's clock, as long as that occurrence is today there. None before it."""
    local_now = now.astimezone(ZoneInfo(timezone))
    occurrence = croniter(cron, local_now).get_prev(dt.datetime)
    if occurrence.date() != local_now.date():
        return None
    return occurrence.date() - dt.timedelta(days=1)


def retry_delay(settings: Settings, attempts: int) -> dt.timedelta:
    seconds = min(settings.report_retry_base_s * 2 ** max(attempts - 1, 0), settings.report_retry_max_s)
    return dt.timedelta(seconds=seconds)


async def send_report(
    conn: AsyncConnection,
    settings: Settings,
    day: dt.date,
    recipients: Sequence[str],
    now: dt.datetime,
    message_id: str | None = None,
) -> SentReport:
    """Builds the day's report and hands it to the SMTP server; raises :class:`SmtpFailure`."""
    target = parse_smtp_url(settings.smtp_url, allow_plaintext_auth=settings.smtp_allow_plaintext_auth)
    if target.allow_plaintext_auth and not target.implicit_tls and target.username:
        logger.warning("smtp password may go out in cleartext", server=target.describe())
    report = await build_report(conn, day, settings.report_timezone, now)
    message = compose(report, settings.report_from, recipients, message_id)
    refused = await send_email(target, message, recipients, settings.smtp_timeout_s)
    if refused:
        logger.warning("report recipients refused", report_day=day.isoformat(), refused=refused)
    return SentReport(report, [r for r in recipients if r not in refused], refused)


async def send_due_report(pool: AsyncConnectionPool, settings: Settings, now: dt.datetime) -> Outcome:
    """One tick of the schedule: sends the due report if this worker is the one to do it."""
    if reports_off_reason(settings):
        return Outcome.OFF
    day = due_report_day(settings.report_cron, settings.report_timezone, now)
    if day is None:
        return Outcome.NOT_DUE
    params = {"report_day": day, "now": now, "lease_until": now + attempt_lease(settings)}
    async with pool.connection() as conn:
        async with conn.transaction():
            await conn.execute(statements["record_missed"], params)
            await conn.execute(statements["record_due"], params)
            claimed = await (await conn.execute(statements["claim_attempt"], params)).fetchone()
        if claimed is None:
            return Outcome.BUSY
        attempt = int(claimed[0])
        log = logger.bind(report_day=day.isoformat(), attempt=attempt)
        try:
            sent = await send_report(
                conn,
                settings,
                day,
                settings.report_recipients,
                now,
                message_id=scheduled_message_id(day, settings.report_from),
            )
        except SmtpFailure as failure:
            if not failure.temporary:
                await conn.execute(statements["record_refused"], {**params, "error": failure.description})
                log.error("daily report refused, not retried", reply=failure.description)
                return Outcome.FAILED
            retry_at = now + retry_delay(settings, attempt)
            retry = {**params, "error": failure.description, "retry_at": retry_at}
            await conn.execute(statements["record_retry"], retry)
            log.warning("daily report not sent, will retry", error=failure.description, retry_at=retry_at.isoformat())
            return Outcome.RETRYING
        sent_at = dt.datetime.now(dt.UTC)
        await conn.execute(statements["record_sent"], {**params, "sent_at": sent_at, "recipients": sent.recipients})
    log.info(
        "daily report sent",
        recipients=sent.recipients,
        refused=sent.refused,
        mailings=len(sent.report.mailings),
        sent_that_day=sent.report.sent_that_day,
    )
    return Outcome.SENT
