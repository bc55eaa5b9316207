from __future__ import annotations

import datetime as dt
from typing import Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import ARRAY, BigInteger, CheckConstraint, SmallInteger, String, func
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from notification.clients.models import filter_of
from notification.db import Base, Entity, utcnow

AUDIENCE_NAME_MAX_LENGTH = 200
OPERATOR_NAME_MAX_LENGTH = 100


class Audience(Entity):
    """A named filter: who it matches is decided each time a mailing using it is planned."""

    __tablename__ = "audiences"
    __table_args__ = (CheckConstraint("char_length(btrim(name)) >= 1", name="name_not_blank"),)

    name: Mapped[str] = mapped_column(String(AUDIENCE_NAME_MAX_LENGTH), unique=True)
    filter_operator_codes: Mapped[list[str]] = mapped_column(ARRAY(String(3)), default=list, server_default="{}")
    filter_tags: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list, server_default="{}")
    filter_attributes: Mapped[dict[str, str]] = mapped_column(
        JSONB, default=dict, server_default=sql_text("'{}'::jsonb")
    )

    @property
    def filter(self) -> dict[str, Any]:
        return filter_of(self)


class OperatorCodeName(Base):
    """The name an operator gives a code (916: MTS); a code without a row has no name."""

    __tablename__ = "operator_code_names"
    __table_args__ = (CheckConstraint(r"code ~ '^[0-9]{3}$'", name="code_format"),)

    code: Mapped[str] = mapped_column(String(3), primary_key=True)
    name: Mapped[str] = mapped_column(String(OPERATOR_NAME_MAX_LENGTH))
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class ClientFacetCount(Base):
    """Clients per tag and per operator code, kept by statement-level triggers on ``clients`` and
    sharded like the message counters (see ``counter_shard()``), so that concurrent imports do not
    queue on one row; a facet's count is the sum of its shards."""

    __tablename__ = "client_facet_counts"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(100), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    clients: Mapped[int] = mapped_column(BigInteger, server_default="0")
