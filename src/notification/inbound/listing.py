"""Reading the inbound messages (the API's list and the console's page)."""

from __future__ import annotations

from collections.abc import Sequence

from advanced_alchemy.extensions.litestar.providers import create_service_provider
from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import ColumnElement

from notification.inbound.models import InboundMessage


class InboundRepository(SQLAlchemyAsyncRepository[InboundMessage]):
    model_type = InboundMessage


class InboundService(SQLAlchemyAsyncRepositoryService[InboundMessage, InboundRepository]):
    repository_type = InboundRepository
    count_with_window_function = False

    async def list_inbound(
        self, page: LimitOffset, phone: str | None = None, stop_word: bool | None = None
    ) -> tuple[Sequence[InboundMessage], int]:
        conditions: list[ColumnElement[bool]] = []
        if phone is not None:
            conditions.append(InboundMessage.phone == phone)
        if stop_word is not None:
            conditions.append(InboundMessage.stop_word.is_(stop_word))
        return await self.list_and_count(page, OrderBy("id", "desc"), *conditions)


provide_inbound_service = create_service_provider(InboundService)
