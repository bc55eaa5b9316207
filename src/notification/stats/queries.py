"""Statistics read from the reporting views (migration 0003), so the API and an analyst's SQL
always agree on the numbers."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.messages.models import MessageStatus

_PARTS_SENT = "SMS parts of the messages sent, counted with the mailing's current text"


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
    parts_sent: Annotated[int, msgspec.Meta(description=_PARTS_SENT)] = 0


class Totals(msgspec.Struct):
    total: int
    by_status: StatusCounts
    parts_sent: Annotated[int, msgspec.Meta(description=_PARTS_SENT)] = 0


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
    SELECT g.id AS mailing_id, g.parts, s.status, coalesce(s.messages, 0) AS messages
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
    parts: dict[int, int] = {}
    for mailing_id, mailing_parts, status, messages in await session.execute(_ALL):
        rows = grouped.setdefault(mailing_id, [])
        parts[mailing_id] = mailing_parts
        if status is not None:
            rows.append((status, messages))
    items = []
    overall: dict[str, int] = {}
    for mailing_id, rows in grouped.items():
        total, by_status = _counts(rows)
        parts_sent = by_status.sent * parts[mailing_id]
        items.append(MailingCounts(mailing_id=mailing_id, total=total, by_status=by_status, parts_sent=parts_sent))
        for status, count in rows:
            overall[status] = overall.get(status, 0) + count
    total, by_status = _counts(list(overall.items()))
    return items, Totals(total=total, by_status=by_status, parts_sent=sum(item.parts_sent for item in items))


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
