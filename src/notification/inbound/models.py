from __future__ import annotations

import datetime as dt

from advanced_alchemy.mixins import IdentityPrimaryKey
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import Boolean, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from notification.db import Base, utcnow


class InboundMessage(IdentityPrimaryKey, Base):
    """A mobile-originated message, as a provider handed it over."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        # A provider that hands the same message over twice (an SMSC redelivering after a lost
        # answer, an HTTP callback retried) is stored once, when it gives its own id.
        Index(
            "uq_inbound_messages_provider_message",
            "provider",
            "provider_message_id",
            unique=True,
            postgresql_where=text("provider_message_id IS NOT NULL"),
        ),
        Index("ix_inbound_messages_received_at", "received_at"),
        Index("ix_inbound_messages_phone_id", "phone", "id"),
    )

    provider: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(32))
    """The sender's address as the provider gave it (a subscriber's number, or an alphanumeric)."""
    text: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    provider_message_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    stop_word: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    """Whether the text was a stop word (and so put the phone on the suppression list)."""
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC(timezone=True), default=utcnow, server_default=func.now()
    )
