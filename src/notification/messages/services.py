from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService

from notification.messages.models import Message


class MessageRepository(SQLAlchemyAsyncRepository[Message]):
    model_type = Message


class MessageService(SQLAlchemyAsyncRepositoryService[Message, MessageRepository]):
    repository_type = MessageRepository
    # A window-function count says 0 for a page past the end; totals must count every row.
    count_with_window_function = False

    async def list_messages(
        self,
        page: LimitOffset,
        mailing_id: int | None = None,
        client_id: int | None = None,
        status: str | None = None,
    ) -> tuple[Sequence[Message], int]:
        filters = _filters(mailing_id=mailing_id, client_id=client_id, status=status)
        return await self.list_and_count(page, OrderBy("id", "asc"), **filters)

    async def page_of_mailing(self, mailing_id: int, page: LimitOffset, status: str | None) -> Sequence[Message]:
        """A page without its count, for callers that already counted (the statistics did)."""
        filters = _filters(mailing_id=mailing_id, status=status)
        return await self.list(page, OrderBy("id", "asc"), **filters)

    async def count_of_mailing(self, mailing_id: int, status: str | None) -> int:
        return await self.count(**_filters(mailing_id=mailing_id, status=status))


def _filters(**values: object) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}
