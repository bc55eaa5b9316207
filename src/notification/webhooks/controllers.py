"""``/webhooks``: the endpoints events are posted to, their secrets and their recent deliveries.
Every change is audited; a secret appears only in the answer that made it."""

from __future__ import annotations

from typing import Annotated

import structlog
from litestar import Controller, delete, get, post, put
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from notification.audit.trail import AuditTrail
from notification.config import Settings
from notification.errors import problem_responses
from notification.pagination import Limit, Offset, Page, bigint_parameter
from notification.webhooks.schemas import (
    DeliveryState,
    WebhookCreated,
    WebhookDeliveryRead,
    WebhookRead,
    WebhookSecret,
    WebhookWrite,
)
from notification.webhooks.service import WebhookService, to_read

logger = structlog.get_logger(__name__)

WebhookId = Annotated[int, bigint_parameter("Webhook endpoint id")]


def provide_webhook_service(db_session: AsyncSession, audit: AuditTrail, state: State) -> WebhookService:
    settings: Settings = state.settings
    return WebhookService(db_session, audit, settings)


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]
    dependencies = {"webhooks": Provide(provide_webhook_service, sync_to_thread=False)}

    @post(
        "/",
        summary="Add a webhook endpoint",
        description="Answers the endpoint with its signing secret (`whsec_...`), shown this once. 400 names the"
        " field at fault; without `NOTIFICATION_SECRET_KEY` no secret can be stored: 400 naming `secret`"
        " (cannot be stored: NOTIFICATION_SECRET_KEY is not set).",
        responses=problem_responses(400, 401),
    )
    async def create_webhook(self, webhooks: WebhookService, data: WebhookWrite) -> WebhookCreated:
        created = await webhooks.create(data)
        logger.info("webhook added", webhook_endpoint_id=created.id, events=created.events)
        return created

    @get("/", summary="List the webhook endpoints", responses=problem_responses(401))
    async def list_webhooks(self, webhooks: WebhookService) -> list[WebhookRead]:
        return await webhooks.list_webhooks()

    @get("/{webhook_id:int}", summary="Get a webhook endpoint", responses=problem_responses(400, 401, 404))
    async def get_webhook(self, webhooks: WebhookService, webhook_id: WebhookId) -> WebhookRead:
        return to_read(await webhooks.get(webhook_id))

    @put(
        "/{webhook_id:int}",
        summary="Replace a webhook endpoint",
        description="The secret stays (rotate it apart). Enabling a disabled endpoint forgets its failures."
        " The URL is checked as on a create.",
        responses=problem_responses(400, 401, 404),
    )
    async def replace_webhook(self, webhooks: WebhookService, webhook_id: WebhookId, data: WebhookWrite) -> WebhookRead:
        read = await webhooks.replace(webhook_id, data)
        logger.info("webhook changed", webhook_endpoint_id=read.id, enabled=read.enabled, events=read.events)
        return read

    @post(
        "/{webhook_id:int}/rotate-secret",
        summary="Give a webhook endpoint a new signing secret",
        description="Answers the new secret, shown this once; every request from now on is signed with it."
        " Without `NOTIFICATION_SECRET_KEY`: 400 naming `secret` (cannot be stored: NOTIFICATION_SECRET_KEY is not"
        " set).",
        responses=problem_responses(400, 401, 404),
    )
    async def rotate_webhook_secret(self, webhooks: WebhookService, webhook_id: WebhookId) -> WebhookSecret:
        rotated = await webhooks.rotate_secret(webhook_id)
        logger.info("webhook secret rotated", webhook_endpoint_id=webhook_id)
        return rotated

    @delete(
        "/{webhook_id:int}",
        summary="Remove a webhook endpoint",
        description="Its undelivered events go with it.",
        responses=problem_responses(400, 401, 404),
    )
    async def delete_webhook(self, webhooks: WebhookService, webhook_id: WebhookId) -> None:
        await webhooks.delete(webhook_id)
        logger.info("webhook removed", webhook_endpoint_id=webhook_id)

    @get(
        "/{webhook_id:int}/deliveries",
        summary="An endpoint's events, newest first, and how each delivery went",
        responses=problem_responses(400, 401, 404),
    )
    async def list_webhook_deliveries(
        self,
        webhooks: WebhookService,
        webhook_id: WebhookId,
        limit: Limit,
        offset: Offset,
        delivery_state: Annotated[
            DeliveryState | None,
            Parameter(description="delivered; pending (not tried yet); retrying (tried, not delivered yet)"),
        ] = None,
    ) -> Page[WebhookDeliveryRead]:
        items, total = await webhooks.deliveries(webhook_id, limit, offset, delivery_state)
        return Page(items=items, total=total, limit=limit, offset=offset)
