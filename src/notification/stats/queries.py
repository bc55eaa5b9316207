"""Statistics read from the reporting views (migration 0003), so the API and an analyst's SQL
always agree on the numbers."""

from __future__ import annotations

import datetime as dt

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.messages.models import MessageStatus


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


class WindowWaits(msgspec.Struct):
    """Pending messages of a windowed mailing that are due later: their client's window is closed
    (or, rarely, a retry backs off), and the earliest moment one of them is due again."""

    waiting_for_window: int = 0
    next_window_opening: dt.datetime | None = None


class Timings(msgspec.Struct):
    planned_at: dt.datetime | None
    first_sent_at: dt.datetime | None
    last_sent_at: dt.datetime | None


def _counts(rows: list[tuple[str, int]]) -> tuple[int, StatusCounts]:
    by_status = {MessageStatus(status).value: count for status, count in rows}
    return sum(by_status.values()), StatusCounts(**by_status)


# Mailings without messages yet still appear, with zeros.
_ALL = text(
    """
    SELECT g.id AS mailing_id, s.status, coalesce(s.messages, 0) AS messages
    FROM mailings g LEFT JOIN mailing_status_counts s ON s.mailing_id = g.id
    ORDER BY g.id
    """
)

_ONE = text("SELECT status, messages FROM mailing_status_counts WHERE mailing_id = :mailing_id")

# Each end read from the partial index on (mailing_id, sent_at): no sort of the sent rows.
_TIMINGS = text(
    """
    SELECT g.planned_at,
           (SELECT min(sent_at) FROM messages WHERE mailing_id = g.id AND status = 'sent') AS first_sent_at,
           (SELECT max(sent_at) FROM messages WHERE mailing_id = g.id AND status = 'sent') AS last_sent_at
    FROM mailings g
    WHERE g.id = :mailing_id
    """
)


_WINDOW_WAITS = text(
    """
    SELECT count(*) AS waiting, min(m.due_at) AS next_opening
    FROM mailings g JOIN messages m ON m.mailing_id = g.id AND m.status = 'pending' AND m.due_at > now()
    WHERE g.id = :mailing_id AND g.send_window_start IS NOT NULL
    """
)


async def all_mailing_counts(session: AsyncSession) -> tuple[list[MailingCounts], Totals]:
    grouped: dict[int, list[tuple[str, int]]] = {}
    for mailing_id, status, messages in await session.execute(_ALL):
        rows = grouped.setdefault(mailing_id, [])
        if status is not None:
            rows.append((status, messages))
    items = []
    overall: dict[str, int] = {}
    for mailing_id, rows in grouped.items():
        total, by_status = _counts(rows)
        items.append(MailingCounts(mailing_id=mailing_id, total=total, by_status=by_status))
        for status, count in rows:
            overall[status] = overall.get(status, 0) + count
    total, by_status = _counts(list(overall.items()))
    return items, Totals(total=total, by_status=by_status)


async def mailing_counts(session: AsyncSession, mailing_id: int) -> MailingCounts:
    rows = [(status, count) for status, count in await session.execute(_ONE, {"mailing_id": mailing_id})]
    total, by_status = _counts(rows)
    return MailingCounts(mailing_id=mailing_id, total=total, by_status=by_status)


async def mailing_timings(session: AsyncSession, mailing_id: int) -> Timings:
    row = (await session.execute(_TIMINGS, {"mailing_id": mailing_id})).one()
    return Timings(planned_at=row.planned_at, first_sent_at=row.first_sent_at, last_sent_at=row.last_sent_at)


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

# Nothing is sent at or after a mailing's end; an answer is written a little after its request,
# hence the margin. So the mailings that can have sent since a moment are found by the index on
# end_at, and each one's sends by its partial index on (mailing_id, sent_at).
_SENDS_PER_MINUTE = text(
    """
    SELECT date_trunc('minute', m.sent_at) AS minute, count(*) AS sent
    FROM mailings g
    JOIN messages m ON m.mailing_id = g.id AND m.status = 'sent' AND m.sent_at >= :since
    WHERE g.end_at > CAST(:since AS timestamptz) - interval '1 hour'
    GROUP BY 1
    """
)

# A sent message keeps no error; naming the other statuses lets the (mailing_id, status) index skip
# the sent ones, most of a mailing, instead of reading each to drop it.
_UNSENT = ", ".join(f"'{status.value}'" for status in MessageStatus if status is not MessageStatus.SENT)

# A message is attempted when it falls due and a retry makes it due again later, so its due time
# dates its last error closely enough for "the last hour".
_ERROR_KINDS_SINCE = text(
    f"""
    SELECT m.error_kind AS kind, count(*) AS messages
    FROM mailings g
    JOIN messages m ON m.mailing_id = g.id AND m.status IN ({_UNSENT}) AND m.error_kind IS NOT NULL
                   AND m.due_at >= :since
    WHERE g.end_at > CAST(:since AS timestamptz) - interval '1 hour'
    GROUP BY 1
    """  # noqa: S608  (constant SQL, nothing from outside)
)

_MAILING_ERROR_KINDS = text(
    f"""
    SELECT error_kind AS kind, count(*) AS messages
    FROM messages
    WHERE mailing_id = :mailing_id AND status IN ({_UNSENT}) AND error_kind IS NOT NULL
    GROUP BY 1
    """  # noqa: S608  (constant SQL, nothing from outside)
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


async def sends_per_minute(session: AsyncSession, since: dt.datetime) -> dict[dt.datetime, int]:
    """Messages sent in each minute from ``since`` on; minutes without sends are absent."""
    return {minute: int(sent) for minute, sent in await session.execute(_SENDS_PER_MINUTE, {"since": since})}


async def error_kinds_since(session: AsyncSession, since: dt.datetime) -> dict[str, int]:
    """Messages whose last provider error is of each kind, among those due since ``since``."""
    return {kind: int(count) for kind, count in await session.execute(_ERROR_KINDS_SINCE, {"since": since})}


async def mailing_error_kinds(session: AsyncSession, mailing_id: int) -> dict[str, int]:
    """The mailing's unsent messages whose last provider error is of each kind."""
    return {kind: int(count) for kind, count in await session.execute(_MAILING_ERROR_KINDS, {"mailing_id": mailing_id})}
