"""Statistics read from the reporting views and the counters behind them (migration 0010), so the
API, the console and an analyst's SQL always agree on the numbers, and none of them reads
``messages`` to count."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.messages.models import MessageStatus

_PARTS_SENT = "SMS parts of the messages sent: messages sent times the parts of the mailing's current text"


class StatusCounts(msgspec.Struct):
    pending: int = 0
    sent: int = 0
    failed: int = 0
    expired: int = 0
    cancelled: int = 0


class MailingCounts(msgspec.Struct):
    mailing_id: int
    total: int
    by_status: StatusCounts


class Totals(msgspec.Struct):
    total: int
    by_status: StatusCounts


# The API's statistics add the SMS parts sent; the console's figures do without, so none of them
# carries a number nobody computed.
class MailingSendCounts(MailingCounts):
    parts_sent: Annotated[int, msgspec.Meta(description=_PARTS_SENT)]


class SendTotals(Totals):
    parts_sent: Annotated[int, msgspec.Meta(description=_PARTS_SENT)]


class WindowWaits(msgspec.Struct):
    """Pending messages of a windowed mailing that are due later: their client's window is closed
    (or, rarely, a retry backs off), and the earliest moment one of them is due again."""

    waiting_for_window: int = 0
    next_window_opening: dt.datetime | None = None


class Timings(msgspec.Struct):
    planned_at: dt.datetime | None
    first_sent_at: dt.datetime | None
    last_sent_at: dt.datetime | None
    # When retention began deleting the mailing's messages; its counts stay as they were.
    messages_purged_at: dt.datetime | None = None


class MinuteSends(msgspec.Struct):
    minute: dt.datetime
    sent: int


def parts_sent(sent: int, parts: int) -> int:
    """The counters count messages, not parts: each sent message counts the parts of its mailing's
    text as it is now, so a text changed mid-mailing counts its earlier sends at the new length."""
    return sent * parts


def _counts(rows: list[tuple[str, int]]) -> tuple[int, StatusCounts]:
    by_status = {MessageStatus(status).value: count for status, count in rows}
    return sum(by_status.values()), StatusCounts(**by_status)


# One row per mailing, its counts side by side (a fifth of the rows of one per status, which took
# most of the request at 1,000 mailings); mailings without messages yet still appear, with zeros.
_ALL = text(
    """
    SELECT g.id AS mailing_id, g.parts,
           coalesce(sum(c.messages) FILTER (WHERE c.status = 'pending'), 0)::bigint AS pending,
           coalesce(sum(c.messages) FILTER (WHERE c.status = 'sent'), 0)::bigint AS sent,
           coalesce(sum(c.messages) FILTER (WHERE c.status = 'failed'), 0)::bigint AS failed,
           coalesce(sum(c.messages) FILTER (WHERE c.status = 'expired'), 0)::bigint AS expired,
           coalesce(sum(c.messages) FILTER (WHERE c.status = 'cancelled'), 0)::bigint AS cancelled
    FROM mailings g LEFT JOIN message_counts c ON c.mailing_id = g.id
    GROUP BY g.id
    ORDER BY g.id
    """
)

_ONE = text("SELECT status, messages FROM mailing_status_counts WHERE mailing_id = :mailing_id")

# The first and last send time of the mailing's first and last minute with a send in it.
_TIMINGS = text(
    """
    SELECT g.planned_at, g.messages_purged_at, t.first_sent_at, t.last_sent_at
    FROM mailings g
    LEFT JOIN mailing_stats t ON t.mailing_id = g.id
    WHERE g.id = :mailing_id
    """
)

# Every minute of [since, until), zeros included, for one mailing or all of them.
_SENDS_PER_MINUTE = text(
    """
    SELECT m.minute, coalesce(s.sent, 0)::bigint AS sent
    FROM generate_series(
        date_trunc('minute', CAST(:since AS timestamptz), 'UTC'),
        CAST(:until AS timestamptz) - interval '1 microsecond',
        interval '1 minute'
    ) AS m(minute)
    LEFT JOIN (
        SELECT minute, sum(sent) AS sent
        FROM message_sends_per_minute
        WHERE minute >= date_trunc('minute', CAST(:since AS timestamptz), 'UTC')
          AND minute < CAST(:until AS timestamptz)
          AND (CAST(:mailing_id AS bigint) IS NULL OR mailing_id = CAST(:mailing_id AS bigint))
        GROUP BY minute
    ) s ON s.minute = m.minute
    ORDER BY m.minute
    """
)


_WINDOW_WAITS = text(
    """
    SELECT count(*) AS waiting, min(m.due_at) AS next_opening
    FROM mailings g JOIN messages m ON m.mailing_id = g.id AND m.status = 'pending' AND m.due_at > now()
    WHERE g.id = :mailing_id AND g.send_window_start IS NOT NULL
    """
)


async def all_mailing_counts(session: AsyncSession) -> tuple[list[MailingSendCounts], SendTotals]:
    items = []
    overall = dict.fromkeys((status.value for status in MessageStatus), 0)
    for row in await session.execute(_ALL):
        by_status = {status: getattr(row, status) for status in overall}
        for status, count in by_status.items():
            overall[status] += count
        items.append(
            MailingSendCounts(
                mailing_id=row.mailing_id,
                total=sum(by_status.values()),
                by_status=StatusCounts(**by_status),
                parts_sent=parts_sent(row.sent, row.parts),
            )
        )
    return items, SendTotals(
        total=sum(overall.values()),
        by_status=StatusCounts(**overall),
        parts_sent=sum(item.parts_sent for item in items),
    )


async def mailing_counts(session: AsyncSession, mailing_id: int) -> MailingCounts:
    rows = [(status, count) for status, count in await session.execute(_ONE, {"mailing_id": mailing_id})]
    total, by_status = _counts(rows)
    return MailingCounts(mailing_id=mailing_id, total=total, by_status=by_status)


async def mailing_timings(session: AsyncSession, mailing_id: int) -> Timings:
    row = (await session.execute(_TIMINGS, {"mailing_id": mailing_id})).one()
    return Timings(
        planned_at=row.planned_at,
        first_sent_at=row.first_sent_at,
        last_sent_at=row.last_sent_at,
        messages_purged_at=row.messages_purged_at,
    )


async def sends_per_minute(
    session: AsyncSession, since: dt.datetime, until: dt.datetime | None = None, mailing_id: int | None = None
) -> list[MinuteSends]:
    """Messages sent in each minute from ``since`` up to ``until`` (default: now), of one mailing
    or of all: the console's chart of the last hour or day, read from the per-minute rollup."""
    params = {"since": since, "until": until or dt.datetime.now(dt.UTC), "mailing_id": mailing_id}
    return [MinuteSends(minute=row.minute, sent=row.sent) for row in await session.execute(_SENDS_PER_MINUTE, params)]


async def mailing_window_waits(session: AsyncSession, mailing_id: int) -> WindowWaits:
    row = (await session.execute(_WINDOW_WAITS, {"mailing_id": mailing_id})).one()
    return WindowWaits(waiting_for_window=row.waiting, next_window_opening=row.next_opening)


# -- figures of the console's dashboard and lists ---------------------------------------------------

_TOTALS = text("SELECT status, messages FROM message_status_totals")

# The condition on the grouped column reaches into the view: only these mailings' rows are counted.
_OF_MAILINGS = text(
    "SELECT mailing_id, status, messages FROM mailing_status_counts WHERE mailing_id = ANY(CAST(:ids AS bigint[]))"
)

_OF_MAILINGS_RUNNING_BETWEEN = text(
    """
    SELECT status, sum(messages) AS messages FROM mailing_status_counts
    WHERE mailing_id = ANY(ARRAY(SELECT id FROM mailings WHERE end_at > :since AND start_at < :until))
    GROUP BY status
    """
)

# A message is attempted when it falls due and a retry makes it due again later, so its due time
# dates its last error closely enough for "the last hour". Read from the errors rollup (migration
# 0015), to the minute: the minute ``since`` falls in counts whole.
_ERROR_KINDS_SINCE = text(
    """
    SELECT error_kind AS kind, sum(messages)::bigint AS messages
    FROM message_errors_per_minute
    WHERE minute >= date_trunc('minute', CAST(:since AS timestamptz), 'UTC')
    GROUP BY 1
    HAVING sum(messages) <> 0
    """
)

# A sent message keeps no error: the counters of the other statuses carry the mailing's error kinds.
_MAILING_ERROR_KINDS = text(
    """
    SELECT error_kind AS kind, sum(messages)::bigint AS messages
    FROM message_counts
    WHERE mailing_id = :mailing_id AND status <> 'sent' AND error_kind <> ''
    GROUP BY 1
    HAVING sum(messages) <> 0
    """
)


async def message_totals(session: AsyncSession) -> Totals:
    total, by_status = _counts([(status, count) for status, count in await session.execute(_TOTALS)])
    return Totals(total=total, by_status=by_status)


async def counts_of_mailings(session: AsyncSession, mailing_ids: list[int]) -> dict[int, MailingCounts]:
    """The counts of each mailing given, zeros for one without messages."""
    grouped: dict[int, list[tuple[str, int]]] = {mailing_id: [] for mailing_id in mailing_ids}
    for mailing_id, status, messages in await session.execute(_OF_MAILINGS, {"ids": mailing_ids}):
        grouped[mailing_id].append((status, messages))
    counts = {}
    for mailing_id, rows in grouped.items():
        total, by_status = _counts(rows)
        counts[mailing_id] = MailingCounts(mailing_id=mailing_id, total=total, by_status=by_status)
    return counts


async def totals_of_mailings_running_between(session: AsyncSession, since: dt.datetime, until: dt.datetime) -> Totals:
    """Messages of the mailings whose time to send overlaps ``[since, until)``, by status."""
    rows = await session.execute(_OF_MAILINGS_RUNNING_BETWEEN, {"since": since, "until": until})
    total, by_status = _counts([(status, int(count)) for status, count in rows])
    return Totals(total=total, by_status=by_status)


async def error_kinds_since(session: AsyncSession, since: dt.datetime) -> dict[str, int]:
    """Messages whose last provider error is of each kind, among those due since ``since``."""
    return {kind: int(count) for kind, count in await session.execute(_ERROR_KINDS_SINCE, {"since": since})}


async def mailing_error_kinds(session: AsyncSession, mailing_id: int) -> dict[str, int]:
    """The mailing's unsent messages whose last provider error is of each kind."""
    return {kind: int(count) for kind, count in await session.execute(_MAILING_ERROR_KINDS, {"mailing_id": mailing_id})}
