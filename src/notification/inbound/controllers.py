from __future__ import annotations

from typing import Annotated

from advanced_alchemy.filters import LimitOffset
from litestar import Controller, get
from litestar.di import Provide
from litestar.params import Parameter

from notification.db import WITHOUT_NUL
from notification.errors import problem_responses
from notification.inbound.listing import InboundService, provide_inbound_service
from notification.inbound.schemas import InboundRead
from notification.pagination import Limit, Offset, Page


class InboundController(Controller):
    path = "/inbound"
    tags = ["inbound"]
    dependencies = {"inbound": Provide(provide_inbound_service)}

    @get("/", summary="List inbound messages, newest first", responses=problem_responses(400, 401))
    async def list_inbound(
        self,
        inbound: InboundService,
        limit: Limit,
        offset: Offset,
        phone: Annotated[str | None, Parameter(max_length=32, pattern=WITHOUT_NUL, description="The sender")] = None,
        stop_word: Annotated[bool | None, Parameter(description="Only stop words, or only the others")] = None,
    ) -> Page[InboundRead]:
        page = LimitOffset(limit, offset)
        rows, total = await inbound.list_inbound(page, phone, stop_word)
        return Page.of(inbound.to_schema(rows, total, filters=[page], schema_type=InboundRead))
