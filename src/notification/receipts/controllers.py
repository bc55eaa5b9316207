"""``POST /providers/{name}/receipts``: an HTTP provider's delivery receipts, authenticated by its
signature (Standard Webhooks, see provider/callbacks.py) rather than by an API token."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Controller, Request, post
from litestar.datastructures import State

from notification.errors import problem, problem_responses
from notification.provider.callbacks import decode_callback_body, signed_callback
from notification.receipts import metrics
from notification.receipts.schemas import ReceiptIn, ReceiptsBody, ReceiptsStored
from notification.receipts.store import MessageReceipt, store_message_receipts

logger = structlog.get_logger(__name__)


class ReceiptCallbackController(Controller):
    path = "/providers/{provider_name:str}/receipts"
    tags = ["receipts"]

    @post(
        "/",
        status_code=202,
        summary="Delivery receipts from an HTTP provider",
        description=(
            "Signed by the provider with its callback secret as the Standard Webhooks specification says"
            " (`webhook-id`, `webhook-timestamp`, `webhook-signature`); no API token. The body is one receipt"
            ' (`{"id": msgId, "status": "delivered"|"undelivered", "error": code}`) or a list of them,'
            " read only once the signature holds. Idempotent: a message already decided stays as it is."
            " 401: not signed by that provider; 404: no such provider, or a msgId no message has"
            " (then nothing is stored)."
        ),
        responses=problem_responses(400, 401, 404),
        security=[],
    )
    async def receive_receipts(
        self,
        request: Request[Any, Any, Any],
        state: State,
        provider_name: str,
    ) -> ReceiptsStored:
        async with signed_callback(request, state, provider_name, "receipt") as (conn, body):
            decoded: ReceiptIn | list[ReceiptIn] = decode_callback_body(
                body, ReceiptsBody, "one receipt or a list of them"
            )
            receipts = decoded if isinstance(decoded, list) else [decoded]
            stored = await store_message_receipts(
                conn, [MessageReceipt(r.id, r.status, r.error if r.status == "undelivered" else None) for r in receipts]
            )
        if stored.unknown_ids:
            shown = ", ".join(str(i) for i in stored.unknown_ids[:10])
            raise problem(404, f"no message has the msgId {shown}: nothing was stored", [("id", f"unknown: {shown}")])
        metrics.observe(provider_name, (r.status for r in receipts), stored.decided)
        logger.info(
            "receipts received",
            provider=provider_name,
            receipts=len(receipts),
            decided=len(stored.decided),
            already_decided=stored.already_decided,
        )
        return ReceiptsStored(
            received=len({r.id for r in receipts}), decided=len(stored.decided), already_decided=stored.already_decided
        )
