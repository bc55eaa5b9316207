"""Database plumbing shared by every domain: the declarative base and the SQLAlchemy config."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from advanced_alchemy.base import AdvancedDeclarativeBase, CommonTableAttributes
from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
)
from advanced_alchemy.mixins import IdentityPrimaryKey
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import Mapped, mapped_column

from notification.config import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# Ids are bigint identities: an id past this names no row, and the driver could not even send it.
BIGINT_MAX = 2**63 - 1
# PostgreSQL's text types cannot hold a NUL character: stored text is refused one at the edge.
WITHOUT_NUL = r"^[^\u0000]*$"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(CommonTableAttributes, AdvancedDeclarativeBase, AsyncAttrs):
    """Shares advanced-alchemy's metadata registry, which its alembic integration reads."""

    __abstract__ = True


class Entity(IdentityPrimaryKey, Base):
    """A row with a bigint identity key and server-side creation/update stamps."""

    __abstract__ = True

    # Server defaults, not only Python ones: rows also arrive through INSERT ... SELECT.
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )


def sqlalchemy_config(settings: Settings) -> SQLAlchemyAsyncConfig:
    return SQLAlchemyAsyncConfig(
        # Unset only while the CLI builds the app to list its commands; `serve` and `dev` insist on it.
        connection_string=settings.sqlalchemy_url if settings.database_url else None,
        before_send_handler="autocommit",
        session_config=AsyncSessionConfig(expire_on_commit=False),
        engine_config=EngineConfig(
            pool_size=settings.database_pool_size, max_overflow=settings.database_pool_size, pool_pre_ping=True
        ),
        alembic_config=AlembicAsyncConfig(
            script_location=str(MIGRATIONS_DIR),
            version_table_name="alembic_version",
        ),
    )
