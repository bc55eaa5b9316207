from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import CheckConstraint, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from notification.db import Base, Entity

CONSENT_STANDS = "consent_given_at IS NOT NULL AND consent_revoked_at IS NULL"
"""Whether a client may receive advertising (besides not being suppressed): two columns of its own
row, no join, so that the filter costs a test per row already read."""


class Client(Entity):
    __tablename__ = "clients"
    __table_args__ = (
        CheckConstraint(r"phone ~ '^7[0-9]{10}$'", name="phone_format"),
        CheckConstraint(r"operator_code ~ '^[0-9]{3}$'", name="operator_code_format"),
        # A mailing filter is "operator code in (...) and/or tag in (...)": this index serves the
        # operator-led form and its operator+tag refinement (ix_clients_tag_id the tag-only form).
        # The time zone rides along so that an audience preview is an index-only scan in index order.
        Index("ix_clients_operator_code_tag_timezone", "operator_code", "tag", "timezone"),
        # Each column a search filters on, with the id last: the console lists a search newest
        # first, and these read it in that order (see clients.services.search_order).
        Index("ix_clients_tag_id", "tag", "id"),
        Index("ix_clients_operator_code_id", "operator_code", "id"),
        Index("ix_clients_timezone_id", "timezone", "id"),
        # A filter on attributes is containment (attributes @> '{"city": "Kazan"}'): jsonb_path_ops
        # indexes exactly that operator, smaller and faster than the default GIN operator class. The
        # filter's fragment repeats the index's predicate so that the planner can use it.
        Index(
            "ix_clients_attributes",
            "attributes",
            postgresql_using="gin",
            postgresql_ops={"attributes": "jsonb_path_ops"},
            # Only clients with attributes: an import of clients without any maintains nothing.
            postgresql_where=text("attributes <> '{}'::jsonb"),
        ),
        # An advertising mailing reaches only the clients whose consent stands: the fragment
        # `consent_stands` repeats this predicate, so a narrow audience is found through it.
        Index("ix_clients_consenting", "id", postgresql_where=text(CONSENT_STANDS)),
    )

    phone: Mapped[str] = mapped_column(String(11), unique=True)
    operator_code: Mapped[str] = mapped_column(String(3))
    tag: Mapped[str] = mapped_column(String(100), default="", server_default="")
    timezone: Mapped[str] = mapped_column(String(64))
    attributes: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    """Named values an operator keeps about the client (name, city...), which texts may name."""
    consent_given_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    """When the client agreed to advertising; kept after a revocation, as the record of what was given."""
    consent_source: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """Where the consent came from (a web form, a shop's paper form...)."""
    consent_revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    """Set when the consent is withdrawn; cleared when it is given again."""


class ClientAttributeName(Base):
    """Every attribute name any client has had, kept by a trigger on ``clients`` (migration 0021): a
    text may name these, and a name no client ever had is a typo refused when the text is written."""

    __tablename__ = "client_attribute_names"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)


class _Filtered(Protocol):
    filter_operator_codes: list[str]
    filter_tags: list[str]
    filter_attributes: dict[str, str]


def filter_of(row: _Filtered) -> dict[str, Any]:
    """The read shape of a stored filter (a mailing's, an audience's, a schedule's)."""
    return {
        "operator_codes": list(row.filter_operator_codes),
        "tags": list(row.filter_tags),
        "attributes": dict(row.filter_attributes or {}),
    }
