"""Webhook endpoints in the console: the list, an endpoint's page with its recent deliveries and
failures, and (admins) add, change, rotate the secret, delete. A new secret is shown on the page
that answers the create or the rotation, once: it is kept neither in the session nor in a flash."""

from __future__ import annotations

from typing import Any, get_args

import msgspec
import structlog
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_400_BAD_REQUEST
from sqlalchemy.ext.asyncio import AsyncSession

from notification.audit.trail import AuditTrail
from notification.config import Settings
from notification.console.forms import decode_as, field_errors
from notification.console.identity import require_admin, require_sign_in
from notification.console.templating import page
from notification.errors import InvalidInput
from notification.webhooks.schemas import EventName, WebhookWrite
from notification.webhooks.service import WebhookService, to_read

logger = structlog.get_logger(__name__)

EVENTS: tuple[str, ...] = get_args(EventName)
RECENT = 50


def provide_console_webhook_service(db_session: AsyncSession, audit: AuditTrail, state: State) -> WebhookService:
    settings: Settings = state.settings
    return WebhookService(db_session, audit, settings)


async def _form_values(request: Request[Any, Any, Any]) -> dict[str, Any]:
    form = await request.form()
    return {
        "url": str(form.get("url", "")),
        "description": str(form.get("description", "")),
        "events": [str(e) for e in form.getall("events", [])],
        "enabled": form.get("enabled") == "on",
    }


class WebhookConsoleController(Controller):
    path = "/webhooks"
    guards = [require_sign_in]
    dependencies = {"webhooks": Provide(provide_console_webhook_service, sync_to_thread=False)}

    async def _list(
        self,
        request: Request[Any, Any, Any],
        webhooks: WebhookService,
        values: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        return page(
            request,
            "webhooks/list.html",
            status_code=status_code,
            webhooks=await webhooks.list_webhooks(),
            events=EVENTS,
            values=values or {"url": "", "description": "", "events": ["message.sent"], "enabled": True},
            errors=errors or {},
        )

    async def _endpoint(
        self,
        request: Request[Any, Any, Any],
        webhooks: WebhookService,
        webhook_id: int,
        values: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        read = to_read(await webhooks.get(webhook_id))
        recent, total = await webhooks.deliveries(webhook_id, RECENT, 0)
        failing, failing_total = await webhooks.deliveries(webhook_id, RECENT, 0, "retrying")
        return page(
            request,
            "webhooks/page.html",
            status_code=status_code,
            webhook=read,
            recent=recent,
            total=total,
            failing=failing,
            failing_total=failing_total,
            events=EVENTS,
            values=values
            or {"url": read.url, "description": read.description, "events": read.events, "enabled": read.enabled},
            errors=errors or {},
        )

    @get("/")
    async def webhooks_page(self, request: Request[Any, Any, Any], webhooks: WebhookService) -> Template:
        return await self._list(request, webhooks)

    @get("/{webhook_id:int}")
    async def webhook_page(
        self, request: Request[Any, Any, Any], webhooks: WebhookService, webhook_id: int
    ) -> Template:
        return await self._endpoint(request, webhooks, webhook_id)

    @post("/", guards=[require_admin])
    async def create(self, request: Request[Any, Any, Any], webhooks: WebhookService) -> Template:
        values = await _form_values(request)
        try:
            created = await webhooks.create(decode_as(values, WebhookWrite))
        except (msgspec.ValidationError, InvalidInput) as exc:
            return await self._list(request, webhooks, values, field_errors(exc), HTTP_400_BAD_REQUEST)
        logger.info("webhook added", via="console", webhook_endpoint_id=created.id)
        return page(request, "webhooks/secret.html", webhook_id=created.id, url=created.url, secret=created.secret)

    @post("/{webhook_id:int}", guards=[require_admin])
    async def update(
        self, request: Request[Any, Any, Any], webhooks: WebhookService, webhook_id: int
    ) -> Template | Redirect:
        values = await _form_values(request)
        await webhooks.get(webhook_id)
        try:
            await webhooks.replace(webhook_id, decode_as(values, WebhookWrite))
        except (msgspec.ValidationError, InvalidInput) as exc:
            return await self._endpoint(request, webhooks, webhook_id, values, field_errors(exc), HTTP_400_BAD_REQUEST)
        logger.info("webhook changed", via="console", webhook_endpoint_id=webhook_id)
        flash(request, "Webhook endpoint saved.", "success")
        return Redirect(f"/admin/webhooks/{webhook_id}", status_code=HTTP_303_SEE_OTHER)

    @post("/{webhook_id:int}/rotate-secret", guards=[require_admin])
    async def rotate_secret(
        self, request: Request[Any, Any, Any], webhooks: WebhookService, webhook_id: int
    ) -> Template:
        read = to_read(await webhooks.get(webhook_id))
        try:
            rotated = await webhooks.rotate_secret(webhook_id)
        except InvalidInput as exc:
            return await self._endpoint(request, webhooks, webhook_id, errors=field_errors(exc), status_code=400)
        logger.info("webhook secret rotated", via="console", webhook_endpoint_id=webhook_id)
        return page(request, "webhooks/secret.html", webhook_id=webhook_id, url=read.url, secret=rotated.secret)

    @post("/{webhook_id:int}/delete", guards=[require_admin])
    async def delete(self, request: Request[Any, Any, Any], webhooks: WebhookService, webhook_id: int) -> Redirect:
        await webhooks.delete(webhook_id)
        logger.info("webhook removed", via="console", webhook_endpoint_id=webhook_id)
        flash(request, "Webhook endpoint removed.", "success")
        return Redirect("/admin/webhooks", status_code=HTTP_303_SEE_OTHER)
