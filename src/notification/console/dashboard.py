"""The dashboard: what the service is doing now, refreshed by HTMX polling."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from litestar import Controller, get
from litestar.di import Provide
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from notification.console.charts import SendRateChart, send_rate_chart
from notification.console.identity import operator_timezone, require_sign_in
from notification.console.templating import page, refreshing
from notification.mailings.deps import provide_mailing_service
from notification.mailings.models import MailingStatus
from notification.mailings.services import MailingService
from notification.metrics import read_queue
from notification.stats.queries import (
    DeliveryCounts,
    ProviderCounts,
    Totals,
    delivery_counts,
    error_kinds_since,
    message_totals,
    provider_totals,
    sends_per_minute,
    totals_of_mailings_running_between,
)

REFRESH_S = 5
FIGURES_TARGET = "figures"


@dataclass(frozen=True, slots=True)
class QueueDepth:
    queue: str
    waiting: int
    running: int


@dataclass(frozen=True, slots=True)
class DashboardFigures:
    read_at: dt.datetime
    messages: Totals
    today: Totals
    mailings: dict[MailingStatus, int]
    queues: list[QueueDepth]
    oldest_due_s: float
    last_hour: SendRateChart
    last_day: SendRateChart
    errors_last_hour: list[tuple[str, int]]
    providers: list[ProviderCounts]
    deliveries: DeliveryCounts


async def read_figures(db_session: AsyncSession, mailings: MailingService, zone: str) -> DashboardFigures:
    tz = ZoneInfo(zone)
    now = dt.datetime.now(dt.UTC)
    midnight = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    day_ago = now - dt.timedelta(hours=24)
    jobs, oldest_due_s = await read_queue(db_session)
    queue_names = sorted({queue for queue, _ in jobs})
    per_minute = {m.minute: m.sent for m in await sends_per_minute(db_session, day_ago, now)}
    errors = await error_kinds_since(db_session, now - dt.timedelta(hours=1))
    return DashboardFigures(
        read_at=now,
        messages=await message_totals(db_session),
        today=await totals_of_mailings_running_between(db_session, midnight, midnight + dt.timedelta(days=1)),
        mailings=await mailings.count_by_status(),
        queues=[QueueDepth(q, jobs.get((q, "todo"), 0), jobs.get((q, "doing"), 0)) for q in queue_names],
        oldest_due_s=oldest_due_s,
        last_hour=send_rate_chart(per_minute, now, 60, tz, tick_minutes=10),
        last_day=send_rate_chart(per_minute, now, 24 * 60, tz, tick_minutes=180),
        errors_last_hour=sorted(errors.items(), key=lambda item: (-item[1], item[0])),
        providers=await provider_totals(db_session),
        deliveries=_total(await delivery_counts(db_session)),
    )


def _total(by_mailing: dict[int, DeliveryCounts]) -> DeliveryCounts:
    total = DeliveryCounts()
    for counts in by_mailing.values():
        total.delivered += counts.delivered
        total.undelivered += counts.undelivered
        total.unknown += counts.unknown
    return total


class DashboardController(Controller):
    path = "/"
    guards = [require_sign_in]
    dependencies = {"mailings": Provide(provide_mailing_service)}

    @get("/")
    async def dashboard(self, request: HTMXRequest, db_session: AsyncSession, mailings: MailingService) -> Template:
        figures = await read_figures(db_session, mailings, operator_timezone(request))
        template = "_dashboard_figures.html" if refreshing(request, FIGURES_TARGET) else "dashboard.html"
        return page(request, template, figures=figures, refresh_s=REFRESH_S)
