from __future__ import annotations

import datetime as dt
import enum

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import CheckConstraint, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from notification.db import Base, utcnow


class SuppressionReason(enum.StrEnum):
    STOP_WORD = "stop_word"
    """The subscriber replied with a stop word."""
    OPERATOR_REQUEST = "operator_request"
    COMPLAINT = "complaint"
    INVALID_NUMBER = "invalid_number"
    """A provider answered, permanently, that the number does not exist."""


_REASONS = ", ".join(f"'{r.value}'" for r in SuppressionReason)


class Suppression(Base):
    """A number no mailing may reach. Keyed by the phone itself, not by a client: a number that
    said stop stays suppressed when its client is deleted and created again, and planning leaves
    the list out with an anti-join on this primary key."""

    __tablename__ = "suppressions"
    __table_args__ = (
        CheckConstraint(f"reason IN ({_REASONS})", name="reason_known"),
        # The clients' own phone format: a number written otherwise would never match one.
        CheckConstraint(r"phone ~ '^7[0-9]{10}$'", name="phone_format"),
        # The console and the API list the newest first; the daily report counts a day's.
        Index("ix_suppressions_created_at", "created_at"),
    )

    phone: Mapped[str] = mapped_column(String(11), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(200), default="", server_default="")
    """Where it came from: the provider a stop word arrived through, an import, a note."""
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTimeUTC(timezone=True), default=utcnow, server_default=func.now()
    )
    created_by: Mapped[str] = mapped_column(String(320))
    """An email, ``api-token:...``, or ``inbound:<provider>`` for a stop word."""
