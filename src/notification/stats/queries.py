"""Statistics read from the reporting views and the counters behind them (migration 0010), so the
API, the console and an analyst's SQL always agree on the numbers, and none of them reads
``messages`` to count."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Annotated

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from notification.lib.sql import load
from notification.messages.models import MessageStatus
from notification.messages.services import MessageService
from notification.messages.state import MESSAGE_ENUMS

statements = load(__package__, "queries.sql", enums=MESSAGE_ENUMS)

_PARTS_SENT = "SMS parts of the messages sent, each counting the parts of the text it carried"


class StatusCounts(msgspec.Struct):
    pending: int = 0
    sent: int = 0
    failed: int = 0
    expired: int = 0
    cancelled: int = 0


class DeliveryCounts(msgspec.Struct):
    """Messages by what their receipts said; sent messages in none of these still wait for one."""

    delivered: int = 0
    undelivered: int = 0
    unknown: Annotated[int, msgspec.Meta(description="No receipt within the receipt timeout")] = 0


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
    by_delivery_state: DeliveryCounts = msgspec.field(default_factory=DeliveryCounts)


class SendTotals(Totals):
    parts_sent: Annotated[int, msgspec.Meta(description=_PARTS_SENT)]
    by_delivery_state: DeliveryCounts = msgspec.field(default_factory=DeliveryCounts)


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


async def parts_sent(session: AsyncSession, mailing_id: int) -> int:
    """The parts of the mailing's messages sent, each its own text's (a personalised text's length
    differs per client, and a text changed mid-mailing counts each send at the length it had),
    summed by the counting triggers per minute: a few rows per mailing."""
    return int(await session.scalar(statements.text("mailing_parts_sent"), {"mailing_id": mailing_id}) or 0)


def _counts(rows: list[tuple[str, int]]) -> tuple[int, StatusCounts]:
    by_status = {MessageStatus(status).value: count for status, count in rows}
    return sum(by_status.values()), StatusCounts(**by_status)


async def delivery_counts(session: AsyncSession, mailing_id: int | None = None) -> dict[int, DeliveryCounts]:
    """Messages by delivery state, of one mailing or of each, from the counters."""
    found: dict[int, dict[str, int]] = {}
    rows = await session.execute(statements.text("delivery_counts"), {"mailing_id": mailing_id})
    for row in rows:
        found.setdefault(row.mailing_id, {})[row.delivery_state] = int(row.messages)
    return {mailing: DeliveryCounts(**states) for mailing, states in found.items()}


def _sum_deliveries(counts: Iterable[DeliveryCounts]) -> DeliveryCounts:
    total = DeliveryCounts()
    for c in counts:
        total.delivered += c.delivered
        total.undelivered += c.undelivered
        total.unknown += c.unknown
    return total


async def all_mailing_counts(session: AsyncSession) -> tuple[list[MailingSendCounts], SendTotals]:
    deliveries = await delivery_counts(session)
    items = []
    overall = dict.fromkeys((status.value for status in MessageStatus), 0)
    for row in await session.execute(statements.text("all_mailing_counts")):
        by_status = {status: getattr(row, status) for status in overall}
        for status, count in by_status.items():
            overall[status] += count
        items.append(
            MailingSendCounts(
                mailing_id=row.mailing_id,
                total=sum(by_status.values()),
                by_status=StatusCounts(**by_status),
                parts_sent=row.parts_sent,
                by_delivery_state=deliveries.get(row.mailing_id, DeliveryCounts()),
            )
        )
    return items, SendTotals(
        total=sum(overall.values()),
        by_status=StatusCounts(**overall),
        parts_sent=sum(item.parts_sent for item in items),
        by_delivery_state=_sum_deliveries(deliveries.values()),
    )


async def mailing_counts(session: AsyncSession, mailing_id: int) -> MailingCounts:
    rows = [
        (status, count)
        for status, count in await session.execute(statements.text("mailing_counts"), {"mailing_id": mailing_id})
    ]
    total, by_status = _counts(rows)
    return MailingCounts(mailing_id=mailing_id, total=total, by_status=by_status)


async def listed_total(
    messages: MessageService, counts: MailingCounts, status: MessageStatus | None, *, purged: bool
) -> int:
    """How many of the mailing's messages (in ``status``, or all) a list of them pages through: the
    counts already read, as counting the mailing again cost as much as the counts themselves (about
    0.2 s for a million messages); but once retention has deleted messages (``purged``), the counts
    outlive them and the list has only what is left, which is counted."""
    if purged:
        return await messages.count_of_mailing(counts.mailing_id, status)
    return counts.total if status is None else int(getattr(counts.by_status, status.value))


async def mailing_timings(session: AsyncSession, mailing_id: int) -> Timings:
    row = (await session.execute(statements.text("mailing_timings"), {"mailing_id": mailing_id})).one()
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
    return [
        MinuteSends(minute=row.minute, sent=row.sent)
        for row in await session.execute(statements.text("sends_per_minute"), params)
    ]


async def mailing_window_waits(session: AsyncSession, mailing_id: int) -> WindowWaits:
    row = (await session.execute(statements.text("mailing_window_waits"), {"mailing_id": mailing_id})).one()
    return WindowWaits(waiting_for_window=row.waiting, next_window_opening=row.next_opening)


# -- figures of the console's dashboard and lists ---------------------------------------------------


async def message_totals(session: AsyncSession) -> Totals:
    total, by_status = _counts(
        [(status, count) for status, count in await session.execute(statements.text("message_totals"))]
    )
    return Totals(total=total, by_status=by_status)


async def counts_of_mailings(session: AsyncSession, mailing_ids: list[int]) -> dict[int, MailingCounts]:
    """The counts of each mailing given, zeros for one without messages."""
    grouped: dict[int, list[tuple[str, int]]] = {mailing_id: [] for mailing_id in mailing_ids}
    for mailing_id, status, messages in await session.execute(
        statements.text("counts_of_mailings"), {"ids": mailing_ids}
    ):
        grouped[mailing_id].append((status, messages))
    counts = {}
    for mailing_id, rows in grouped.items():
        total, by_status = _counts(rows)
        counts[mailing_id] = MailingCounts(mailing_id=mailing_id, total=total, by_status=by_status)
    return counts


async def totals_of_mailings_running_between(session: AsyncSession, since: dt.datetime, until: dt.datetime) -> Totals:
    """Messages of the mailings whose time to send overlaps ``[since, until)``, by status."""
    rows = await session.execute(
        statements.text("totals_of_mailings_running_between"), {"since": since, "until": until}
    )
    total, by_status = _counts([(status, int(count)) for status, count in rows])
    return Totals(total=total, by_status=by_status)


async def error_kinds_since(session: AsyncSession, since: dt.datetime) -> dict[str, int]:
    """Messages whose last provider error is of each kind, among those due since ``since``."""
    return {
        kind: int(count)
        for kind, count in await session.execute(statements.text("error_kinds_since"), {"since": since})
    }


async def mailing_error_kinds(session: AsyncSession, mailing_id: int) -> dict[str, int]:
    """The mailing's unsent messages whose last provider error is of each kind."""
    return {
        kind: int(count)
        for kind, count in await session.execute(statements.text("mailing_error_kinds"), {"mailing_id": mailing_id})
    }


async def counted_error_kinds(conn: AsyncConnection | AsyncSession) -> dict[str, int]:
    """Every counted message whose last provider error is of each kind, retention's deletions included."""
    return {kind: int(count) for kind, count in await conn.execute(statements.text("counted_error_kinds"))}


# -- messages per provider (migration 0021) ----------------------------------------------------------


class ProviderCounts(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(description="The provider of the messages' last attempt")]
    messages: Annotated[int, msgspec.Meta(description="Messages whose last attempt went to it, in any status")]
    sent: Annotated[int, msgspec.Meta(description="Of those, sent")]
    failed: Annotated[int, msgspec.Meta(description="Of those, failed for good")]


async def mailing_provider_counts(session: AsyncSession, mailing_id: int) -> list[ProviderCounts]:
    """The mailing's messages by the provider of their last attempt, most sent first; a message
    never attempted has no provider and is in none."""
    rows = await session.execute(statements.text("mailing_provider_counts"), {"mailing_id": mailing_id})
    return [ProviderCounts(r.provider, int(r.messages), int(r.sent), int(r.failed)) for r in rows]


async def provider_totals(session: AsyncSession) -> list[ProviderCounts]:
    """Every counted message by the provider of its last attempt, most sent first."""
    rows = await session.execute(statements.text("provider_totals"))
    return [ProviderCounts(r.provider, int(r.messages), int(r.sent), int(r.failed)) for r in rows]
