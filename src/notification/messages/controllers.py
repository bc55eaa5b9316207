from __future__ import annotations

from typing import Annotated

from advanced_alchemy.filters import LimitOffset
from litestar import Controller, get
from litestar.di import Provide

from notification.errors import problem_responses
from notification.messages.deps import provide_message_service
from notification.messages.models import MessageStatus
from notification.messages.schemas import MessageRead
from notification.messages.services import MessageService
from notification.observability import bind_ids
from notification.pagination import Limit, Offset, Page, bigint_parameter


class MessageController(Controller):
    path = "/messages"
    tags = ["messages"]
    dependencies = {"messages": Provide(provide_message_service)}

    @get("/", summary="List messages", responses=problem_responses(400, 401))
    async def list_messages(
        self,
        messages: MessageService,
        limit: Limit,
        offset: Offset,
        mailing_id: Annotated[int | None, bigint_parameter("Only messages of this mailing")] = None,
        client_id: Annotated[int | None, bigint_parameter("Only messages to this client")] = None,
        status: MessageStatus | None = None,
    ) -> Page[MessageRead]:
        bind_ids(mailing_id=mailing_id, client_id=client_id)
        page = LimitOffset(limit, offset)
        rows, total = await messages.list_messages(page, mailing_id, client_id, status)
        return Page.of(messages.to_schema(rows, total, filters=[page], schema_type=MessageRead))
