from __future__ import annotations

import datetime as dt
import enum

from advanced_alchemy.mixins import IdentityPrimaryKey
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from notification.db import Base, utcnow


class MessageStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset(MessageStatus) - {MessageStatus.PENDING}


class DeliveryState(enum.StrEnum):
    """What reached the phone, beside the sending status: decided by a delivery receipt, or
    ``unknown`` when none came within the receipt timeout (a later receipt still decides)."""

    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    UNKNOWN = "unknown"


class ErrorKind(enum.StrEnum):
    """Why a message is not (yet) sent, decided where the answer is read and stored beside the
    human-readable ``last_error``, so that metrics and statistics group by it instead of parsing text."""

    HTTP_5XX = "http_5xx"
    HTTP_429 = "http_429"
    HTTP_408 = "http_408"
    HTTP_4XX = "http_4xx"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    MALFORMED = "malformed"
    PROVIDER_CODE = "provider_code"
    SMPP_THROTTLED = "smpp_throttled"
    """The SMSC answered ESME_RTHROTTLED or ESME_RMSGQFUL: the provider pauses, the message waits."""
    SMPP_STATUS = "smpp_status"
    """Any other SMPP command status refusing the submit (the status itself is in ``last_error``)."""
    SMPP_BIND = "smpp_bind"
    """No bind to the SMSC: it refused the bind, or every bind slot of the account is taken."""
    DEADLINE = "deadline"
    WINDOW_NEVER_OPENS = "window_never_opens"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"
    """Cancelled: the phone is on the suppression list (a STOP, a complaint, an operator's request)."""
    NO_CONSENT = "no_consent"
    """Cancelled: an advertising message to a client whose consent is missing or was revoked."""
    OTHER = "other"


def _sql_list(values: type[enum.StrEnum]) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


class Message(IdentityPrimaryKey, Base):
    """One mailing to one client; its id is the msgId the provider sees, hence its idempotency key."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("mailing_id", "client_id", name="uq_messages_mailing_client"),
        CheckConstraint(f"status IN ({_sql_list(MessageStatus)})", name="status_known"),
        CheckConstraint(f"error_kind IN ({_sql_list(ErrorKind)})", name="error_kind_known"),
        CheckConstraint(f"delivery_state IN ({_sql_list(DeliveryState)})", name="delivery_state_known"),
        # Statistics are GROUP BY status per mailing: an index-only scan of this index answers them.
        Index("ix_messages_mailing_id_status", "mailing_id", "status"),
        Index("ix_messages_client_id", "client_id"),
        # A mailing's messages page by id, and its first and last send times, without scanning.
        Index("ix_messages_mailing_id_id", "mailing_id", "id"),
        Index("ix_messages_mailing_id_sent_at", "mailing_id", "sent_at", postgresql_where=text("status = 'sent'")),
        # A receipt names an SMSC id, maybe of one part of a long text: any part finds its message.
        Index(
            "ix_messages_provider_part_ids",
            text("string_to_array(provider_message_id, ',')"),
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
        ),
        # What the receipt timeout marks unknown, without reading the messages already decided.
        Index(
            "ix_messages_awaiting_receipt",
            "sent_at",
            postgresql_where=text("status = 'sent' AND delivery_state IS NULL"),
        ),
    )

    mailing_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("mailings.id", ondelete="CASCADE"))
    # A deleted client's sent history stays in the statistics; the link alone goes.
    client_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("clients.id", ondelete="SET NULL"), nullable=True
    )
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.PENDING, server_default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC(timezone=True), default=utcnow, server_default=func.now()
    )
    due_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    leased_until: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(24), nullable=True)
    provider: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The provider of its last attempt (by name)."""
    provider_message_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """The provider's own id of the accepted message (an SMSC's ``message_id``)."""
    encoding: Mapped[str | None] = mapped_column(String(8), nullable=True)
    parts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The encoding and SMS parts of the text its last request carried, which a personalised text
    makes the client's own; written with the answer, none before a request (or before migration 0021)."""
    delivery_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """``delivered``, ``undelivered`` or ``unknown``; None while no receipt has decided it."""
    delivery_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The SMSC's or provider's error code of an undelivered message."""
    receipt_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    """When the deciding receipt was stored (or the timeout marked it unknown), by the database's clock."""
