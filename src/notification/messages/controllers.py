from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from litestar import Controller, get
from litestar.di import Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from notification.errors import problem_responses
from notification.messages.models import MessageStatus
from notification.messages.schemas import MessageRead
from notification.messages.services import MessageService, to_read
from notification.observability import bind_ids
from notification.pagination import Limit, Offset, Page


async def provide_message_service(db_session: AsyncSession) -> AsyncIterator[MessageService]:
    async with MessageService.new(session=db_session) as service:
        yield service


class MessageController(Controller):
    path = "/messages"
    tags = ["messages"]
    dependencies = {"messages": Provide(provide_message_service)}

    @get("/", summary="List messages", responses=problem_responses(400))
    async def list_messages(
        self,
        messages: MessageService,
        limit: Limit,
        offset: Offset,
        mailing_id: Annotated[int | None, Parameter(ge=1)] = None,
        client_id: Annotated[int | None, Parameter(ge=1)] = None,
        status: MessageStatus | None = None,
    ) -> Page[MessageRead]:
        bind_ids(mailing_id=mailing_id, client_id=client_id)
        rows, total = await messages.list_messages(limit, offset, mailing_id, client_id, status)
        return Page(items=[to_read(m) for m in rows], total=total, limit=limit, offset=offset)
