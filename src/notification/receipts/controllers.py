"""``POST /providers/{name}/receipts``: an HTTP provider's delivery receipts, authenticated by its
signature (Standard Webhooks, see provider/callbacks.py) rather than by an API token."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Controller, Request, post
from litestar.datastructures import State
from procrastinate import App, PsycopgConnector

from notification.config import Settings
from notification.errors import InvalidInput, problem, problem_responses
from notification.provider.callbacks import CallbackRefused, authenticate_callback
from notification.receipts import metrics
from notification.receipts.schemas import ReceiptIn, ReceiptsBody, ReceiptsStored
from notification.receipts.store import MessageReceipt, store_message_receipts

logger = structlog.get_logger(__name__)


def _pool(state: State) -> Any:
    job_queue: App = state.job_queue
    connector = job_queue.connector
    if not isinstance(connector, PsycopgConnector):
        msg = "the job queue must use procrastinate's PsycopgConnector"
        raise TypeError(msg)
    return connector.pool


def _decoded(body: bytes) -> list[ReceiptIn]:
    try:
        decoded = msgspec.json.decode(body, type=ReceiptsBody, strict=True)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `")
        field = where.rstrip("`").removeprefix("$").lstrip(".") or "body"
        raise InvalidInput.of(field, message) from None
    except msgspec.DecodeError:
        raise InvalidInput.of("body", "must be JSON: one receipt or a list of them") from None
    return decoded if isinstance(decoded, list) else [decoded]


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
        settings: Settings = state.settings
        body = await request.body()
        async with _pool(state).connection() as conn:
            try:
                provider = await authenticate_callback(conn, settings, provider_name, request.headers, body)
            except CallbackRefused as exc:
                logger.warning("receipt callback refused", provider=provider_name, status=exc.status, reason=exc.detail)
                raise problem(exc.status, exc.detail) from None
            receipts = _decoded(body)
            stored = await store_message_receipts(
                conn, [MessageReceipt(r.id, r.status, r.error if r.status == "undelivered" else None) for r in receipts]
            )
        if stored.unknown_ids:
            shown = ", ".join(str(i) for i in stored.unknown_ids[:10])
            raise problem(404, f"no message has the msgId {shown}: nothing was stored", [("id", f"unknown: {shown}")])
        metrics.observe(provider, (r.status for r in receipts), stored.decided)
        logger.info(
            "receipts received",
            provider=provider,
            receipts=len(receipts),
            decided=len(stored.decided),
            already_decided=stored.already_decided,
        )
        return ReceiptsStored(
            received=len({r.id for r in receipts}), decided=len(stored.decided), already_decided=stored.already_decided
        )
