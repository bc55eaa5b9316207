"""The tables of delivery receipts (migration 0023). The rule deciding a message from its parts'
receipts is the database function ``decide_delivery_states``, run by every path that stores them."""

from __future__ import annotations

import datetime as dt
import enum

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, SmallInteger, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from notification.db import Base


class PartState(enum.StrEnum):
    """A final receipt of one part (or of a whole message, from an HTTP provider)."""

    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"


_PART_STATES = ", ".join(f"'{s.value}'" for s in PartState)


class UnmatchedReceipt(Base):
    """A final receipt naming an SMSC id no message carries yet: it overtook the write of its
    ``submit_sm_resp``. Applied by the statement that writes the id (a trigger), or by the sweep."""

    __tablename__ = "unmatched_receipts"
    __table_args__ = (CheckConstraint(f"state IN ({_PART_STATES})", name="state_known"),)

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    part_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())


class ReceiptPart(Base):
    """The receipt of one part of a message not decided yet; its rows go when it is decided."""

    __tablename__ = "receipt_parts"
    __table_args__ = (CheckConstraint(f"state IN ({_PART_STATES})", name="state_known"),)

    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    part_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    parts: Mapped[int] = mapped_column(Integer, server_default="1")
    """How many parts the message has: delivered once this many parts are."""
    state: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())


class MessageDeliveryCount(Base):
    """Messages of a mailing in one delivery state, kept by triggers like the other counters
    (sharded, folded, verified and rebuilt with them)."""

    __tablename__ = "message_delivery_counts"

    mailing_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("mailings.id", ondelete="CASCADE"), primary_key=True)
    delivery_state: Mapped[str] = mapped_column(String(16), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default="0")
    messages: Mapped[int] = mapped_column(BigInteger, server_default="0")
