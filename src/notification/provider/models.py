from __future__ import annotations

import datetime as dt

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import CheckConstraint, Double, SmallInteger, func
from sqlalchemy.orm import Mapped, mapped_column

from notification.db import Base


class ProviderRateBudget(Base):
    """The one row of the provider's rate budget, shared by every worker: a token bucket in SMS
    parts, refilled by the time elapsed since ``refilled_at`` (see provider/rate_limit.py), and
    the moment until which the provider asked everyone to hold back (a 429's Retry-After)."""

    __tablename__ = "provider_rate_budget"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    tokens: Mapped[float] = mapped_column(Double, server_default="0")
    refilled_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    blocked_until: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
