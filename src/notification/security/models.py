from __future__ import annotations

import datetime as dt

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import CheckConstraint, Index, Integer, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from notification.db import Base


class SignInFailures(Base):
    """Failed sign-ins of one client address in its current window (see security/throttle.py)."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (
        CheckConstraint("failures >= 0", name="failures_not_negative"),
        Index("ix_sign_in_failures_window_started_at", "window_started_at"),
    )

    address: Mapped[str] = mapped_column(Text, primary_key=True)
    window_started_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
