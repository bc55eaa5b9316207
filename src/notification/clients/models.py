from __future__ import annotations

from sqlalchemy import CheckConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from notification.db import Entity


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
    )

    phone: Mapped[str] = mapped_column(String(11), unique=True)
    operator_code: Mapped[str] = mapped_column(String(3))
    tag: Mapped[str] = mapped_column(String(100), default="", server_default="")
    timezone: Mapped[str] = mapped_column(String(64))
