from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated

import msgspec

from notification.db import WITHOUT_NUL
from notification.mailings.models import MailingKind
from notification.mailings.schemas import AudienceId, Kind, MailingFilter, MailingText, SendWindow
from notification.schedules.models import RRULE_MAX_LENGTH, SCHEDULE_NAME_MAX_LENGTH
from notification.stats.queries import StatusCounts
from notification.timezones import TimeZoneName

# 31 days: an occurrence longer than a month overlaps every monthly one after it.
DURATION_MAX_MINUTES = 31 * 24 * 60
PREVIEW_MAX = 50

ScheduleName = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=SCHEDULE_NAME_MAX_LENGTH, pattern=WITHOUT_NUL, examples=["Daily deals"]),
]
RecurrenceRule = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=RRULE_MAX_LENGTH,
        pattern=WITHOUT_NUL,
        description=(
            "An RFC 5545 RRULE value (HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY; COUNT or UNTIL), read in the"
            " schedule's time zone from `starts`. A UNTIL in UTC (…Z) is read as the local time it is then."
        ),
        examples=["FREQ=DAILY;COUNT=7", "FREQ=WEEKLY;BYDAY=MO,WE,FR;UNTIL=20270131T235959"],
    ),
]
LocalStart = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?$",
        description="The first occurrence as a local wall time in `timezone`, without an offset",
        examples=["2026-12-05T10:00"],
    ),
]
# A number, not an int: JSON's 120.0 is the whole number 120, and must be taken as one.
DurationMinutes = Annotated[
    float,
    msgspec.Meta(
        ge=1,
        le=DURATION_MAX_MINUTES,
        multiple_of=1,
        description="How long each occurrence runs: its mailing ends this long after it starts",
        examples=[120],
    ),
]

# Stated in the body's description, and named in the 400 that refuses a body breaking one of them.
SCHEDULE_RULES = (
    "Rules beyond the schema, each refused with a 400 naming the field:"
    " text must not be blank; name must not be blank;"
    " starts must be a real local date and time;"
    " rrule must be one valid RRULE value (no DTSTART: `starts` is the start);"
    " timezone must be a known IANA time zone; send_window.end must differ from send_window.start;"
    " audience_id excludes a non-empty filter, and must name an existing audience;"
    " text must be a valid template and must use only known variables (line and column given)."
)


class ScheduleCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: ScheduleName
    text: MailingText
    rrule: RecurrenceRule
    starts: LocalStart
    timezone: TimeZoneName
    duration_minutes: DurationMinutes
    kind: Kind
    filter: MailingFilter = msgspec.field(default_factory=MailingFilter)
    audience_id: AudienceId | None = None
    send_window: SendWindow | None = None


class SchedulePatch(msgspec.Struct, forbid_unknown_fields=True):
    """The fields to change. Occurrences already created (running or waiting for their start) keep
    what they were made with; the change applies to the occurrences created after it."""

    name: ScheduleName | msgspec.UnsetType = msgspec.UNSET
    text: MailingText | msgspec.UnsetType = msgspec.UNSET
    rrule: RecurrenceRule | msgspec.UnsetType = msgspec.UNSET
    starts: LocalStart | msgspec.UnsetType = msgspec.UNSET
    timezone: TimeZoneName | msgspec.UnsetType = msgspec.UNSET
    duration_minutes: DurationMinutes | msgspec.UnsetType = msgspec.UNSET
    kind: Kind | msgspec.UnsetType = msgspec.UNSET
    filter: MailingFilter | msgspec.UnsetType = msgspec.UNSET
    audience_id: AudienceId | msgspec.UnsetType | None = msgspec.UNSET
    send_window: SendWindow | msgspec.UnsetType | None = msgspec.UNSET


ScheduleCreate.__doc__ = (
    "A recurring mailing: a template and an RFC 5545 rule in a named time zone; each occurrence becomes a"
    f" mailing of its own. {SCHEDULE_RULES}"
)
SchedulePatch.__doc__ = f"{SchedulePatch.__doc__} {SCHEDULE_RULES}"


class ScheduleStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    FINISHED = "finished"
    """The rule has no occurrence left."""


class ScheduleRead(msgspec.Struct):
    id: int
    name: str
    text: str
    rrule: str
    starts: str
    timezone: str
    duration_minutes: int
    kind: MailingKind
    filter: MailingFilter
    audience_id: int | None
    send_window: SendWindow | None
    status: ScheduleStatus
    paused_at: dt.datetime | None
    next_occurrences: Annotated[list[dt.datetime], msgspec.Meta(description="The next few occurrence starts, in UTC")]
    created_at: dt.datetime
    updated_at: dt.datetime


class Occurrence(msgspec.Struct):
    starts_at: dt.datetime
    ends_at: dt.datetime
    local_start: Annotated[str, msgspec.Meta(description="The start as a wall time in the schedule's time zone")]


class SchedulePreview(msgspec.Struct):
    occurrences: list[Occurrence]


class OccurrenceMailing(msgspec.Struct):
    mailing_id: int
    occurrence_at: dt.datetime
    start_at: dt.datetime
    end_at: dt.datetime
    status: str
    total: int
    by_status: StatusCounts


class ScheduleStats(msgspec.Struct):
    """The sum of the schedule's occurrences, from the message counters."""

    schedule_id: int
    occurrences: Annotated[int, msgspec.Meta(description="Mailings created for its occurrences")]
    total: int
    by_status: StatusCounts
    items: Annotated[list[OccurrenceMailing], msgspec.Meta(description="Each occurrence's mailing, latest first")]
