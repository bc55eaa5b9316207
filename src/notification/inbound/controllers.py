from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from advanced_alchemy.filters import LimitOffset
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter

from notification.db import WITHOUT_NUL
from notification.errors import problem_responses
from notification.inbound.listing import InboundService, provide_inbound_service
from notification.inbound.schemas import InboundIn, InboundRead, InboundStored
from notification.inbound.service import receive_inbound
from notification.pagination import Limit, Offset, Page
from notification.provider.callbacks import decode_callback_body, signed_callback


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


class InboundCallbackController(Controller):
    path = "/providers/{provider_name:str}/inbound"
    tags = ["inbound"]

    @post(
        "/",
        status_code=202,
        summary="A message from a phone, posted by an HTTP provider",
        description=(
            "Signed by the provider with its callback secret as its delivery receipts are (Standard Webhooks:"
            " `webhook-id`, `webhook-timestamp`, `webhook-signature`); no API token. A stop word puts the"
            " sender on the suppression list in the transaction that stores the message, cancelling its"
            " pending messages. Idempotent by the provider's `id`. 401: not signed by that provider; 404: no"
            " such provider."
        ),
        responses=problem_responses(400, 401, 404),
        security=[],
    )
    async def receive_from_phone(
        self, request: Request[Any, Any, Any], state: State, provider_name: str
    ) -> InboundStored:
        async with signed_callback(request, state, provider_name, "inbound") as (conn, body):
            message: InboundIn = decode_callback_body(body, InboundIn, "one message from a phone")
            received = await receive_inbound(
                conn,
                state.settings,
                provider_name,
                message.phone,
                message.text,
                message.received_at or dt.datetime.now(dt.UTC),
                message.id,
            )
        return InboundStored(id=received.id, stop_word=received.stop_word, suppressed=received.suppressed)
