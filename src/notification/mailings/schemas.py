from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from notification.clients.schemas import OperatorCode, Tag
from notification.mailings.models import TEXT_MAX_LENGTH

LocalTime = Annotated[
    str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM", examples=["09:00"])
]
AwareDatetime = Annotated[
    dt.datetime, msgspec.Meta(tz=True, description="ISO 8601 with a UTC offset", examples=["2026-12-01T09:00:00+03:00"])
]
MailingText = Annotated[str, msgspec.Meta(min_length=1, max_length=TEXT_MAX_LENGTH)]
FILTER_MAX_VALUES = 1000


class SendWindow(msgspec.Struct, forbid_unknown_fields=True):
    """Local hours in each client's own time zone; ``end`` before ``start`` wraps past midnight."""

    start: LocalTime
    end: LocalTime


class MailingFilter(msgspec.Struct, forbid_unknown_fields=True):
    """A client matches when each non-empty list holds its value; both empty means everyone."""

    operator_codes: Annotated[list[OperatorCode], msgspec.Meta(max_length=FILTER_MAX_VALUES)] = msgspec.field(
        default_factory=list
    )
    tags: Annotated[list[Tag], msgspec.Meta(max_length=FILTER_MAX_VALUES)] = msgspec.field(default_factory=list)


class MailingCreate(msgspec.Struct, forbid_unknown_fields=True):
    text: MailingText
    start_at: AwareDatetime
    end_at: AwareDatetime
    filter: MailingFilter = msgspec.field(default_factory=MailingFilter)
    send_window: SendWindow | None = None


class MailingPatch(msgspec.Struct, forbid_unknown_fields=True):
    text: MailingText | msgspec.UnsetType = msgspec.UNSET
    start_at: AwareDatetime | msgspec.UnsetType = msgspec.UNSET
    end_at: AwareDatetime | msgspec.UnsetType = msgspec.UNSET
    filter: MailingFilter | msgspec.UnsetType = msgspec.UNSET
    send_window: SendWindow | msgspec.UnsetType | None = msgspec.UNSET


class MailingRead(msgspec.Struct):
    id: int
    text: str
    start_at: dt.datetime
    end_at: dt.datetime
    filter: MailingFilter
    send_window: SendWindow | None
    status: str
    encoding: Annotated[str, msgspec.Meta(description="GSM-7 or UCS-2", examples=["GSM-7"])]
    parts: Annotated[int, msgspec.Meta(description="SMS parts each message of this text takes")]
    paused_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


RetryableStatus = Literal["failed", "expired"]


class RetryRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Messages in these statuses go back to pending and are sent again; sent and cancelled
    messages never are. ``end_at`` moves the mailing's end: required once it has passed."""

    statuses: Annotated[list[RetryableStatus], msgspec.Meta(min_length=1, examples=[["failed", "expired"]])]
    end_at: AwareDatetime | None = None


class RetryResult(msgspec.Struct):
    requeued: Annotated[int, msgspec.Meta(description="Messages put back to pending")]
    mailing: MailingRead
