from __future__ import annotations

import datetime as dt
from typing import Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import ARRAY, BigInteger, Boolean, CheckConstraint, Double, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from notification.db import Base, Entity


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


class StoredProvider(Entity):
    """A provider as an administrator set it: its kind's settings, and its secret encrypted (see
    provider/secrets.py). When this table has rows, they are the providers; else the
    ``NOTIFICATION_PROVIDER_*`` settings describe the one provider."""

    __tablename__ = "providers"
    __table_args__ = (
        CheckConstraint("kind IN ('http', 'smpp')", name="kind_known"),
        CheckConstraint("rate_limit IS NULL OR rate_limit > 0", name="rate_limit_positive"),
        CheckConstraint("concurrency >= 1 AND window_size >= 1 AND binds >= 1", name="limits_positive"),
    )

    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    """Everything of its kind's settings but the secret."""
    secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The token (HTTP) or password (SMPP), encrypted with ``NOTIFICATION_SECRET_KEY``; never read back."""
    callback_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The secret its receipt callbacks are signed with (HTTP), encrypted like ``secret``; never read back."""
    rate_limit: Mapped[float | None] = mapped_column(Double, nullable=True)
    concurrency: Mapped[int] = mapped_column(Integer, server_default="200")
    window_size: Mapped[int] = mapped_column(Integer, server_default="10")
    binds: Mapped[int] = mapped_column(Integer, server_default="1")
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))


class ProviderRoute(Base):
    """One rule of the ordered routes: the messages it matches go to its providers, in order."""

    __tablename__ = "provider_routes"

    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    operator_codes: Mapped[list[str] | None] = mapped_column(ARRAY(String(8)), nullable=True)
    phone_prefixes: Mapped[list[str] | None] = mapped_column(ARRAY(String(16)), nullable=True)
    providers: Mapped[list[str]] = mapped_column(ARRAY(String(64)))


class ProviderConfigVersion(Base):
    """One row, bumped by a trigger on every change to providers or routes: what workers poll to
    know that they must rebuild their providers."""

    __tablename__ = "provider_config_version"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, server_default="0")
