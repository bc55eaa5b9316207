"""Webhook endpoints and their outbox.

An outbox row is one event for one endpoint, written by the triggers of migration 0024 in the
transaction of the change it tells of: an event exists if and only if its change committed. The
dispatcher (``webhooks/dispatch.py``) posts each row, in id order per subject, and records the
outcome on the row itself, which is what the API and the console show as an endpoint's deliveries."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from advanced_alchemy.mixins import IdentityPrimaryKey
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import ARRAY, BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from notification.db import Base, Entity


class WebhookEvent(enum.StrEnum):
    MESSAGE_SENT = "message.sent"
    MESSAGE_DELIVERED = "message.delivered"
    MESSAGE_UNDELIVERED = "message.undelivered"
    MESSAGE_FAILED = "message.failed"
    MESSAGE_EXPIRED = "message.expired"
    MAILING_STARTED = "mailing.started"
    MAILING_PAUSED = "mailing.paused"
    MAILING_FINISHED = "mailing.finished"
    INBOUND_RECEIVED = "inbound.received"
    """A message from a phone that is not a stop word (a stop word's effect is the suppression)."""


_EVENTS = ", ".join(f"'{e.value}'" for e in WebhookEvent)


class WebhookEndpoint(Entity):
    """Where events go, which ones, and how its deliveries are faring."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        CheckConstraint(f"events <@ ARRAY[{_EVENTS}]::varchar[] AND cardinality(events) >= 1", name="events_known"),
        CheckConstraint("url ~ '^https?://'", name="url_http"),
    )

    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(200), server_default="")
    events: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    secret: Mapped[str] = mapped_column(Text)
    """The signing secret (``whsec_...``), sealed with ``NOTIFICATION_SECRET_KEY``; opened only to sign."""
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    failing_since: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    """The first failure since the last success; the endpoint is disabled once this is old enough."""
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
    """Failed attempts in a row: the endpoint's own backoff grows with it."""
    retry_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    """No request to it before this (its backoff after a failure)."""
    last_success_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class WebhookOutbox(IdentityPrimaryKey, Base):
    """One event for one endpoint; delivered once ``delivered_at`` is set."""

    __tablename__ = "webhook_outbox"
    __table_args__ = (
        # What the dispatcher claims: an endpoint's rows not delivered yet, oldest first.
        Index("ix_webhook_outbox_undelivered", "endpoint_id", "id", postgresql_where=text("delivered_at IS NULL")),
        # The order per subject: an earlier row of the same subject still undelivered holds the later.
        Index(
            "ix_webhook_outbox_subject",
            "endpoint_id",
            "subject",
            "id",
            postgresql_where=text("delivered_at IS NULL"),
        ),
        # When the next retry is due, for a run deciding whether to wait for it or to end.
        Index("ix_webhook_outbox_next_attempt_at", "next_attempt_at", postgresql_where=text("delivered_at IS NULL")),
        # An endpoint's recent deliveries, newest first, and the cascade of its deletion.
        Index("ix_webhook_outbox_endpoint_id_id", "endpoint_id", "id"),
        Index("ix_webhook_outbox_created_at", "created_at"),
    )

    endpoint_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(48))
    """``message:<id>`` or ``mailing:<id>``: events of one subject reach an endpoint in order."""
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    leased_until: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    """Set while a dispatcher posts it; a dead dispatcher's rows come back when it passes."""
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The HTTP status of the last attempt; none when it got no answer."""
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
