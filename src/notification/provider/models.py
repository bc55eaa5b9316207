from __future__ import annotations

import datetime as dt

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import Double, String, func
from sqlalchemy.orm import Mapped, mapped_column

from notification.db import Base


class ProviderRateBudget(Base):
    """A provider's rate budget, one row per provider (by its name), shared by every worker: a
    token bucket in SMS parts, refilled by the time elapsed since ``refilled_at`` (see
    provider/rate_limit.py), and the moment until which the provider asked everyone to hold back
    (a 429's Retry-After)."""

    __tablename__ = "provider_rate_budget"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(Double, server_default="0")
    refilled_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    blocked_until: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
