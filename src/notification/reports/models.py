from __future__ import annotations

import datetime as dt
import enum

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import ARRAY, CheckConstraint, Date, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from notification.db import Base, utcnow


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # due, not yet accepted by the SMTP server (maybe retrying)
    SENT = "sent"
    FAILED = "failed"  # refused for good (a 5xx reply): not retried
    MISSED = "missed"  # still pending when the day it was due ended


_STATUS_LIST = ", ".join(f"'{s.value}'" for s in DeliveryStatus)


class ReportDelivery(Base):
    """The scheduled report of one day: one row per day makes "exactly one report, whoever sends it"
    a primary key, and carries the retry schedule across workers and restarts."""

    __tablename__ = "report_deliveries"
    __table_args__ = (CheckConstraint(f"status IN ({_STATUS_LIST})", name="status_known"),)

    report_day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    """The calendar day (in the report time zone) the report covers."""
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    # Held by the worker talking to the SMTP server; a worker killed mid-send lets it run out.
    leased_until: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    recipients: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )
