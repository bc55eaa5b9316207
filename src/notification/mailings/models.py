from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
    and_,
    case,
    column,
    exists,
    func,
    table,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, column_property, mapped_column

from notification.clients.models import filter_of
from notification.db import Entity
from notification.mailings.sms import Encoding
from notification.texts.templates import variables_of

TEXT_MAX_LENGTH = 1600
_ENCODINGS = ", ".join(f"'{e.value}'" for e in Encoding)


class MailingKind(enum.StrEnum):
    """Who a mailing may reach: suppressed numbers never, and for advertising only the clients
    whose consent stands."""

    SERVICE = "service"
    ADVERTISING = "advertising"


KINDS_SQL = ", ".join(f"'{k.value}'" for k in MailingKind)


class Mailing(Entity):
    __tablename__ = "mailings"
    __table_args__ = (
        CheckConstraint("end_at > start_at", name="ends_after_start"),
        CheckConstraint(f"char_length(text) BETWEEN 1 AND {TEXT_MAX_LENGTH}", name="text_length"),
        CheckConstraint(f"encoding IN ({_ENCODINGS})", name="encoding_known"),
        CheckConstraint(f"kind IN ({KINDS_SQL})", name="kind_known"),
        CheckConstraint("parts >= 1", name="parts_positive"),
        CheckConstraint(
            "(send_window_start IS NULL) = (send_window_end IS NULL)"
            " AND (send_window_start IS NULL OR send_window_start <> send_window_end)",
            name="send_window_complete",
        ),
        CheckConstraint(
            "audience_id IS NULL OR (filter_operator_codes = '{}' AND filter_tags = '{}')",
            name="audience_or_filter",
        ),
        # Each occurrence of a schedule is one mailing, however many workers create occurrences.
        UniqueConstraint("schedule_id", "occurrence_at", name="uq_mailings_schedule_occurrence"),
    )

    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), default=MailingKind.SERVICE, server_default=MailingKind.SERVICE.value)
    start_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    end_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), index=True)
    filter_operator_codes: Mapped[list[str]] = mapped_column(ARRAY(String(3)), default=list, server_default="{}")
    filter_tags: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list, server_default="{}")
    filter_attributes: Mapped[dict[str, str]] = mapped_column(
        JSONB, default=dict, server_default=sql_text("'{}'::jsonb")
    )
    send_window_start: Mapped[dt.time | None] = mapped_column(Time, nullable=True)
    send_window_end: Mapped[dt.time | None] = mapped_column(Time, nullable=True)
    # Every change that affects who gets what and when bumps plan_version; a planning run records
    # the version it planned, so send jobs of a superseded plan recognise themselves and stop.
    plan_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    planned_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    planned_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    # Set when retention starts deleting the mailing's messages: its counters are final from then
    # on, and it can no longer be planned again (that would send to everyone a second time).
    messages_purged_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    # Set by a pause, cleared by a resume: while set, no new provider request starts for it.
    paused_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    # Decided from the text whenever it is written (mailings/sms.py), read by the API, the
    # statistics and the provider rate limit.
    encoding: Mapped[str] = mapped_column(String(8))
    parts: Mapped[int] = mapped_column(Integer)
    # A saved audience instead of the filter above, resolved when the mailing is planned. A finished
    # mailing does not hold its audience: deleting the audience forgets the link.
    audience_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("audiences.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # The schedule whose occurrence this mailing is; the mailing stays when the schedule goes.
    schedule_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("schedules.id", ondelete="SET NULL"), nullable=True
    )
    occurrence_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True)
    # The matching clients its last plan left out, and why: written by each plan, none before.
    left_out_suppressed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    left_out_no_consent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    if TYPE_CHECKING:
        status: str  # a column_property, defined below the class

    # The read shape of the columns above, for the service's ``to_schema``.
    @property
    def filter(self) -> dict[str, Any]:
        return filter_of(self)

    @property
    def variables(self) -> list[str]:
        return sorted(variables_of(self.text))

    @property
    def send_window(self) -> dict[str, str] | None:
        if self.send_window_start is None or self.send_window_end is None:
            return None
        return {"start": self.send_window_start.strftime("%H:%M"), "end": self.send_window_end.strftime("%H:%M")}

    @property
    def left_out(self) -> dict[str, int] | None:
        if self.left_out_suppressed is None:
            return None
        return {"suppressed": self.left_out_suppressed, "no_consent": self.left_out_no_consent or 0}


class MailingStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"


# A mailing is finished once its end has passed or its current plan has nothing left pending;
# a paused one stays paused until resumed, or until its end.
_messages = table("messages", column("mailing_id"), column("status"))
Mailing.status = column_property(  # type: ignore[assignment]
    case(
        (func.now() >= Mailing.end_at, MailingStatus.FINISHED.value),
        (Mailing.paused_at.is_not(None), MailingStatus.PAUSED.value),
        (func.now() < Mailing.start_at, MailingStatus.SCHEDULED.value),
        (
            and_(
                Mailing.planned_version == Mailing.plan_version,
                ~exists().where(_messages.c.mailing_id == Mailing.id, _messages.c.status == "pending"),
            ),
            MailingStatus.FINISHED.value,
        ),
        else_=MailingStatus.RUNNING.value,
    )
)
