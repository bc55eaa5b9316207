from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from advanced_alchemy.filters import LimitOffset
from litestar import Controller, get
from litestar.di import Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from notification.errors import problem_responses
from notification.mailings.deps import MailingId, provide_mailing_service
from notification.mailings.schemas import MailingRead
from notification.mailings.services import MailingService
from notification.messages.deps import provide_message_service
from notification.messages.models import MessageStatus
from notification.messages.schemas import MessageRead
from notification.messages.services import MessageService
from notification.pagination import Limit, Offset, Page
from notification.stats.queries import (
    DeliveryCounts,
    MailingSendCounts,
    ProviderCounts,
    SendTotals,
    StatusCounts,
    Timings,
    WindowWaits,
    all_mailing_counts,
    delivery_counts,
    listed_total,
    mailing_counts,
    mailing_provider_counts,
    mailing_timings,
    mailing_window_waits,
    parts_sent,
)


class AllMailingStats(msgspec.Struct):
    items: list[MailingSendCounts]
    totals: SendTotals


class MailingStats(msgspec.Struct):
    mailing_id: int
    total: int
    by_status: StatusCounts
    by_delivery_state: Annotated[
        DeliveryCounts,
        msgspec.Meta(description="Messages by what their delivery receipts said, from counters"),
    ]
    parts_sent: Annotated[
        int,
        msgspec.Meta(description="SMS parts of the messages sent: messages sent times the parts of its current text"),
    ]
    timings: Timings
    # Pending messages due later because their clients' send window is closed, and when the
    # first of them is due: both 0 / null for a mailing without a window.
    waiting_for_window: int
    next_window_opening: dt.datetime | None
    providers: Annotated[
        list[ProviderCounts],
        msgspec.Meta(
            description=(
                "Messages by the provider of their last attempt, most sent first, from counters (messages never "
                "attempted are in none)"
            )
        ),
    ]
    mailing: MailingRead
    messages: Page[MessageRead]


class StatsController(Controller):
    path = "/mailings"
    tags = ["statistics"]
    dependencies = {
        "mailings": Provide(provide_mailing_service),
        "messages": Provide(provide_message_service),
    }

    @get("/stats", summary="Every mailing with its message counts by status", responses=problem_responses(401))
    async def all_stats(self, db_session: AsyncSession) -> AllMailingStats:
        items, totals = await all_mailing_counts(db_session)
        return AllMailingStats(items=items, totals=totals)

    @get(
        "/{mailing_id:int}/stats",
        summary="One mailing: counts by status, timings and its messages",
        responses=problem_responses(400, 401, 404),
    )
    async def mailing_stats(
        self,
        db_session: AsyncSession,
        mailings: MailingService,
        messages: MessageService,
        mailing_id: MailingId,
        limit: Limit,
        offset: Offset,
        status: Annotated[MessageStatus | None, Parameter(description="Only messages in this status")] = None,
    ) -> MailingStats:
        # Every figure from one snapshot: a mailing deleted meanwhile is either all there or a 404.
        await db_session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        mailing = await mailings.get_mailing(mailing_id)
        counts = await mailing_counts(db_session, mailing_id)
        page = LimitOffset(limit, offset)
        rows = await messages.page_of_mailing(mailing_id, page, status)
        total = await listed_total(messages, counts, status, purged=mailing.messages_purged_at is not None)
        # Only a windowed mailing has messages waiting for a window; asking costs a scan of its pending ones.
        windowed = mailing.send_window_start is not None
        waits = await mailing_window_waits(db_session, mailing_id) if windowed else WindowWaits()
        return MailingStats(
            mailing_id=mailing_id,
            total=counts.total,
            by_status=counts.by_status,
            by_delivery_state=(await delivery_counts(db_session, mailing_id)).get(mailing_id, DeliveryCounts()),
            parts_sent=await parts_sent(db_session, mailing_id),
            timings=await mailing_timings(db_session, mailing_id),
            waiting_for_window=waits.waiting_for_window,
            next_window_opening=waits.next_window_opening,
            providers=await mailing_provider_counts(db_session, mailing_id),
            mailing=mailings.to_schema(mailing, schema_type=MailingRead),
            messages=Page.of(messages.to_schema(rows, total, filters=[page], schema_type=MessageRead)),
        )
