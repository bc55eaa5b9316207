"""Webhook endpoints an administrator manages: each change committed with its audit row.

The signing secret is made here (Standard Webhooks' form, ``whsec_`` and 32 random bytes in
base64), sealed before it is stored, and returned once to the caller of a create or a rotation;
the audit row says that it changed, never what it became."""

from __future__ import annotations

import base64
import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from notification.audit.models import AuditAction, AuditEntity
from notification.audit.trail import AuditTrail, snapshot
from notification.config import Settings
from notification.errors import InvalidInput, NotFound
from notification.provider.secrets import SecretBox
from notification.webhooks.models import WebhookEndpoint, WebhookOutbox
from notification.webhooks.schemas import (
    DeliveryState,
    WebhookCreated,
    WebhookDeliveryRead,
    WebhookRead,
    WebhookSecret,
    WebhookWrite,
)

SECRET_PREFIX = "whsec_"  # noqa: S105  (the form's prefix, not a secret)
SECRET_BYTES = 32
SECRET_CHANGED = "changed"  # noqa: S105  (a word for the audit row, not a secret)
# Bookkeeping of the deliveries, not something anyone changed: left out of audit rows.
_NOT_AUDITED = frozenset({"failing_since", "failures", "retry_at", "last_success_at", "disabled_at"})


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def webhook_id(outbox_id: int) -> str:
    """The ``webhook-id`` of an outbox row: the same on every retry, so a receiver can drop a repeat."""
    return f"msg_{outbox_id}"


def to_read(row: WebhookEndpoint) -> WebhookRead:
    return WebhookRead(
        id=row.id,
        url=row.url,
        description=row.description,
        events=list(row.events),
        enabled=row.enabled,
        failing_since=row.failing_since,
        failures=row.failures,
        retry_at=row.retry_at,
        last_success_at=row.last_success_at,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def delivery_state(row: WebhookOutbox) -> DeliveryState:
    if row.delivered_at is not None:
        return "delivered"
    return "retrying" if row.attempts > 0 else "pending"


def to_delivery(row: WebhookOutbox) -> WebhookDeliveryRead:
    return WebhookDeliveryRead(
        id=row.id,
        webhook_id=webhook_id(row.id),
        event_type=row.event_type,
        subject=row.subject,
        state=delivery_state(row),
        attempts=row.attempts,
        created_at=row.created_at,
        last_attempt_at=row.last_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        next_attempt_at=None if row.delivered_at is not None else row.next_attempt_at,
        delivered_at=row.delivered_at,
        payload=dict(row.payload),
    )


def check_url(url: str) -> str:
    """http(s) with a host, and no credentials: a URL is shown on pages and in audit rows, which a
    password must never reach (a receiver authenticates the sender by the signature instead)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput.of("url", f"is not a valid URL: {exc}") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput.of("url", "must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput.of("url", "must not carry credentials (receivers verify the signature instead)")
    if port == 0:
        raise InvalidInput.of("url", "is not a valid URL: port 0 names no port")
    return url


def _audited(read: WebhookRead) -> dict[str, Any]:
    return {name: value for name, value in snapshot(read).items() if name not in _NOT_AUDITED}


class WebhookService:
    def __init__(
        self, session: AsyncSession | async_scoped_session[AsyncSession], audit: AuditTrail, settings: Settings
    ) -> None:
        self.session = session
        self.audit = audit
        self.box = SecretBox.from_settings(settings)

    async def list_webhooks(self) -> list[WebhookRead]:
        rows = (await self.session.execute(select(WebhookEndpoint).order_by(WebhookEndpoint.id))).scalars()
        return [to_read(r) for r in rows]

    async def get(self, webhook_id: int) -> WebhookEndpoint:
        row = await self.session.get(WebhookEndpoint, webhook_id)
        if row is None:
            raise NotFound("webhook", webhook_id)
        return row

    def _sealed_new_secret(self) -> tuple[str, str]:
        if not self.box.can_store:
            raise InvalidInput.of("secret", "cannot be stored: NOTIFICATION_SECRET_KEY is not set")
        secret = new_secret()
        return secret, self.box.seal(secret)

    @staticmethod
    def _apply(row: WebhookEndpoint, data: WebhookWrite) -> None:
        row.url = check_url(data.url)
        row.description = data.description
        row.events = sorted(set(data.events))
        if data.enabled and not row.enabled:
            # Enabled again by a person: its past failures no longer count toward disabling it.
            row.failing_since, row.failures, row.retry_at = None, 0, None
            row.disabled_at, row.disabled_reason = None, None
        row.enabled = data.enabled

    async def create(self, data: WebhookWrite) -> WebhookCreated:
        row = WebhookEndpoint(enabled=True, failures=0)
        self._apply(row, data)
        secret, row.secret = self._sealed_new_secret()
        self.session.add(row)
        await self.session.flush([row])
        await self.session.refresh(row)
        read = to_read(row)
        await self.audit.created(AuditEntity.WEBHOOK, row.id, {**_audited(read), "secret": SECRET_CHANGED})
        await self.session.commit()
        return WebhookCreated(**{**snapshot_fields(read), "secret": secret})

    async def replace(self, webhook_id: int, data: WebhookWrite) -> WebhookRead:
        row = await self.get(webhook_id)
        before = _audited(to_read(row))
        self._apply(row, data)
        await self.session.flush([row])
        await self.session.refresh(row)
        read = to_read(row)
        await self.audit.updated(AuditEntity.WEBHOOK, row.id, before, _audited(read))
        await self.session.commit()
        return read

    async def rotate_secret(self, webhook_id: int) -> WebhookSecret:
        row = await self.get(webhook_id)
        secret, row.secret = self._sealed_new_secret()
        await self.session.flush([row])
        await self.audit.record(
            AuditAction.ROTATE_SECRET, AuditEntity.WEBHOOK, row.id, {"secret": (None, SECRET_CHANGED)}
        )
        await self.session.commit()
        return WebhookSecret(id=row.id, secret=secret)

    async def delete(self, webhook_id: int) -> None:
        row = await self.get(webhook_id)
        fields = _audited(to_read(row))
        await self.session.delete(row)
        await self.audit.deleted(AuditEntity.WEBHOOK, webhook_id, fields)
        await self.session.commit()

    async def deliveries(
        self, webhook_id: int, limit: int, offset: int, state: DeliveryState | None = None
    ) -> tuple[list[WebhookDeliveryRead], int]:
        """The endpoint's events, newest first, with how each one's delivery went."""
        await self.get(webhook_id)
        query = select(WebhookOutbox).where(WebhookOutbox.endpoint_id == webhook_id)
        if state == "delivered":
            query = query.where(WebhookOutbox.delivered_at.is_not(None))
        elif state == "pending":
            query = query.where(WebhookOutbox.delivered_at.is_(None), WebhookOutbox.attempts == 0)
        elif state == "retrying":
            query = query.where(WebhookOutbox.delivered_at.is_(None), WebhookOutbox.attempts > 0)
        total = (await self.session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        rows = (
            await self.session.execute(query.order_by(WebhookOutbox.id.desc()).limit(limit).offset(offset))
        ).scalars()
        return [to_delivery(r) for r in rows], total


def snapshot_fields(read: WebhookRead) -> dict[str, Any]:
    return {name: getattr(read, name) for name in read.__struct_fields__}
