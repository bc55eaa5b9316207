from __future__ import annotations

import datetime as dt
from typing import Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import ARRAY, BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, String, Text, Time
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from notification.clients.models import filter_of
from notification.db import Entity
from notification.mailings.models import KINDS_SQL, TEXT_MAX_LENGTH, MailingKind

SCHEDULE_NAME_MAX_LENGTH = 200
RRULE_MAX_LENGTH = 1000


class Schedule(Entity):
    """A mailing template and the recurrence that makes mailings of it. The rule is read in the
    schedule's own time zone from ``starts``, a local wall time (see ``recurrence.py``)."""

    __tablename__ = "schedules"
    __table_args__ = (
        CheckConstraint(f"char_length(text) BETWEEN 1 AND {TEXT_MAX_LENGTH}", name="text_length"),
        CheckConstraint("duration_s > 0", name="duration_positive"),
        CheckConstraint(f"kind IN ({KINDS_SQL})", name="kind_known"),
        CheckConstraint(
            "audience_id IS NULL OR (filter_operator_codes = '{}' AND filter_tags = '{}')",
            name="audience_or_filter",
        ),
        CheckConstraint(
            "(send_window_start IS NULL) = (send_window_end IS NULL)"
            " AND (send_window_start IS NULL OR send_window_start <> send_window_end)",
            name="send_window_complete",
        ),
    )

    name: Mapped[str] = mapped_column(String(SCHEDULE_NAME_MAX_LENGTH))
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), default=MailingKind.SERVICE, server_default=MailingKind.SERVICE.value)
    audience_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("audiences.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    filter_operator_codes: Mapped[list[str]] = mapped_column(ARRAY(String(3)), default=list, server_default="{}")
    filter_tags: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list, server_default="{}")
    filter_attributes: Mapped[dict[str, str]] = mapped_column(
        JSONB, default=dict, server_default=sql_text("'{}'::jsonb")
    )
    send_window_start: Mapped[dt.time | None] = mapped_column(Time, nullable=True)
    send_window_end: Mapped[dt.time | None] = mapped_column(Time, nullable=True)
    duration_s: Mapped[int] = mapped_column(Integer)
    rrule: Mapped[str] = mapped_column(String(RRULE_MAX_LENGTH))
    starts: Mapped[dt.datetime] = mapped_column(DateTime(timezone=False))
    """The first occurrence's local wall time in ``timezone``, and the rule's DTSTART."""
    timezone: Mapped[str] = mapped_column(String(64))
    paused_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    considered_until: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    """Occurrences up to this instant have been created or skipped; later ones are still to come.
    Reset to the moment of a change, so the changed rule governs what follows it."""

    @property
    def filter(self) -> dict[str, Any]:
        return filter_of(self)

    @property
    def send_window(self) -> dict[str, str] | None:
        if self.send_window_start is None or self.send_window_end is None:
            return None
        return {"start": self.send_window_start.strftime("%H:%M"), "end": self.send_window_end.strftime("%H:%M")}

    @property
    def duration(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.duration_s)
