"""What the daily report says: the figures of one calendar day in the report time zone, read in
one consistent snapshot of the database."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from notification.reports.queries import statements
from notification.schedules.queries import statements as schedule_statements
from notification.stats.queries import DeliveryCounts, StatusCounts
from notification.suppressions.queries import statements as suppression_statements

TEXT_HEAD = 60
TOP_ERROR_KINDS = 5


@dataclass(frozen=True, slots=True)
class DayMailing:
    mailing_id: int
    text_head: str
    """The first 60 characters of the mailing's text, with an ellipsis when there is more."""
    start_at: dt.datetime
    end_at: dt.datetime
    audience: int
    """Every message the mailing has: one per client it was planned for."""
    sent_that_day: int
    by_status: StatusCounts
    """At the time of the report."""
    ended_unsent: bool
    """Ended by the end of the day with messages that were never sent (pending, failed or expired)."""

    @property
    def unsent(self) -> int:
        return self.by_status.pending + self.by_status.failed + self.by_status.expired


@dataclass(frozen=True, slots=True)
class DaySchedule:
    schedule_id: int
    name: str
    occurrences_that_day: int
    occurrences: int
    by_status: StatusCounts
    """The sum over all its occurrences, at the time of the report."""


@dataclass(frozen=True, slots=True)
class OptOuts:
    stop_words: int = 0
    """Numbers a stop word put on the suppression list that day."""
    suppressed: int = 0
    """Numbers put on the suppression list that day, for any reason (stop words included)."""
    consents_revoked: int = 0


@dataclass(frozen=True, slots=True)
class DailyReport:
    day: dt.date
    timezone: str
    day_start: dt.datetime
    day_end: dt.datetime
    generated_at: dt.datetime
    mailings: list[DayMailing]
    audience: int
    sent_that_day: int
    by_status: StatusCounts
    """Totals over the day's mailings."""
    error_kinds: list[tuple[str, int]]
    """The most frequent kinds of last error among the day's undelivered messages, most frequent first."""
    schedules: list[DaySchedule] = field(default_factory=list)
    """Schedules with an occurrence active that day."""
    opt_outs: OptOuts = field(default_factory=OptOuts)
    by_delivery_state: DeliveryCounts = field(default_factory=DeliveryCounts)
    """What the receipts of the day's mailings' messages said, at the time of the report."""

    @property
    def receipt_rate(self) -> float | None:
        """Delivered among the messages a receipt (or the receipt timeout) decided; None before any."""
        d = self.by_delivery_state
        decided = d.delivered + d.undelivered + d.unknown
        return d.delivered / decided if decided else None

    @property
    def delivery_rate(self) -> float | None:
        """Sent among the messages that reached an outcome (sent, failed, expired); cancelled ones
        were withdrawn on purpose and pending ones may still go. None when there is no outcome yet."""
        s = self.by_status
        settled = s.sent + s.failed + s.expired
        return s.sent / settled if settled else None

    @property
    def ended_unsent(self) -> list[DayMailing]:
        return [m for m in self.mailings if m.ended_unsent]


def day_bounds(day: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """The instants of the day's local midnights; zoneinfo picks the right offset on a DST change."""
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def previous_day(timezone: str, now: dt.datetime) -> dt.date:
    return now.astimezone(ZoneInfo(timezone)).date() - dt.timedelta(days=1)


async def build_report(conn: AsyncConnection, day: dt.date, timezone: str, now: dt.datetime) -> DailyReport:
    day_start, day_end = day_bounds(day, timezone)
    params = {
        "day_start": day_start,
        "day_end": day_end,
        "now": now,
        "text_head": TEXT_HEAD,
        "limit": TOP_ERROR_KINDS,
    }
    # One snapshot: the totals, the mailings and the error kinds describe the same moment.
    async with conn.transaction():
        await conn.execute(statements["read_only_snapshot"])
        async with conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(statements["mailings_of_the_day"], params)
            rows = await cursor.fetchall()
            await cursor.execute(statements["top_error_kinds"], params)
            error_kinds = [(row["kind"], int(row["messages"])) for row in await cursor.fetchall()]
            await cursor.execute(schedule_statements["schedules_of_the_day"], params)
            schedule_rows = await cursor.fetchall()
            await cursor.execute(suppression_statements["opt_outs_of_the_day"], params)
            opt_outs = await cursor.fetchone() or {}
            ids = [row["mailing_id"] for row in rows[:-1]]
            await cursor.execute(statements["deliveries_of_mailings"], {"ids": ids})
            deliveries = {row["delivery_state"]: int(row["messages"]) for row in await cursor.fetchall()}
    *mailing_rows, totals = rows
    return DailyReport(
        day=day,
        timezone=timezone,
        day_start=day_start,
        day_end=day_end,
        generated_at=now,
        mailings=[
            DayMailing(
                mailing_id=row["mailing_id"],
                # One line whatever the text: a report row never breaks.
                text_head=" ".join(row["text_head"].split()) + ("…" if row["text_cut"] else ""),
                start_at=row["start_at"],
                end_at=row["end_at"],
                audience=int(row["audience"]),
                sent_that_day=int(row["sent_that_day"]),
                by_status=_counts(row),
                ended_unsent=bool(row["ended_unsent"]),
            )
            for row in mailing_rows
        ],
        audience=int(totals["audience"]),
        sent_that_day=int(totals["sent_that_day"]),
        by_status=_counts(totals),
        error_kinds=error_kinds,
        schedules=[
            DaySchedule(
                schedule_id=row["schedule_id"],
                name=row["name"],
                occurrences_that_day=int(row["occurrences_that_day"]),
                occurrences=int(row["occurrences"]),
                by_status=_counts(row),
            )
            for row in schedule_rows
        ],
        opt_outs=OptOuts(
            int(opt_outs.get("stop_words", 0)),
            int(opt_outs.get("suppressed", 0)),
            int(opt_outs.get("consents_revoked", 0)),
        ),
        by_delivery_state=DeliveryCounts(**deliveries),
    )


def _counts(row: dict[str, Any]) -> StatusCounts:
    return StatusCounts(
        pending=int(row["pending"]),
        sent=int(row["sent"]),
        failed=int(row["failed"]),
        expired=int(row["expired"]),
        cancelled=int(row["cancelled"]),
    )
