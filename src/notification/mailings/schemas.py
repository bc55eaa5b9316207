from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from notification.clients.schemas import AttributeName, AttributeValue, OperatorCode, Tag
from notification.db import WITHOUT_NUL
from notification.mailings.models import TEXT_MAX_LENGTH, MailingKind, MailingStatus
from notification.mailings.sms import Encoding

_HH_MM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
WindowStart = Annotated[
    str, msgspec.Meta(pattern=_HH_MM, min_length=5, max_length=5, description="HH:MM", examples=["09:00"])
]
WindowEnd = Annotated[
    str, msgspec.Meta(pattern=_HH_MM, min_length=5, max_length=5, description="HH:MM", examples=["21:00"])
]
_INSTANT = "ISO 8601 with a UTC offset; in UTC, between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z"
StartAt = Annotated[dt.datetime, msgspec.Meta(tz=True, description=_INSTANT, examples=["2026-12-01T09:00:00+03:00"])]
EndAt = Annotated[dt.datetime, msgspec.Meta(tz=True, description=_INSTANT, examples=["2026-12-01T21:00:00+03:00"])]
MailingText = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=TEXT_MAX_LENGTH,
        pattern=WITHOUT_NUL,
        description="The SMS text, not blank. It may name the client's fields and attributes:"
        ' {{ name }}, {{ name | default("client") }} (filters: default, upper, lower, capitalize, title, trim);'
        " it must be a valid template and must use only known variables (a client field, or an attribute"
        " some client has), or a 400 names `text` with the line and column",
        examples=["Spring sale: 20% off everything until Sunday"],
    ),
]
FILTER_MAX_VALUES = 1000
# A number, not an int: JSON's 12.0 is the whole number 12, and is taken as that id.
AudienceId = Annotated[
    float,
    msgspec.Meta(
        ge=1,
        le=2**53,
        multiple_of=1,
        description="A saved audience, resolved when the mailing is planned, instead of `filter`",
    ),
]

# Stated in the body's description, and named in the 400 that refuses a body breaking one of them.
CROSS_FIELD_RULES = (
    "Rules beyond the schema, each refused with a 400 naming the field:"
    " end_at must be after start_at;"
    " text must not be blank;"
    " send_window.end must differ from send_window.start;"
    " start_at and end_at must fall between 0001-01-01 and 9999-12-31 in UTC;"
    " audience_id excludes a non-empty filter, and must name an existing audience;"
    " text must be a valid template and must use only known variables (line and column given)."
)


Kind = Annotated[
    MailingKind,
    msgspec.Meta(
        description="`service` (transactional: everyone who matches and is not suppressed) or `advertising`"
        " (only clients whose consent stands, and who are not suppressed)",
        examples=["service"],
    ),
]


class SendWindow(msgspec.Struct, forbid_unknown_fields=True):
    """Local hours in each client's own time zone; `end` before `start` wraps past midnight."""

    start: WindowStart
    end: WindowEnd


FILTER_MAX_ATTRIBUTES = 20
AttributeFilter = Annotated[
    dict[AttributeName, AttributeValue],
    msgspec.Meta(
        max_length=FILTER_MAX_ATTRIBUTES,
        description='Attribute values a client must have, each equal: {"city": "Kazan"}. Rules beyond the'
        " schema, each refused with a 400 naming the field: each name must be an attribute name (letters, digits"
        " and _, not starting with a digit, 1 to 64 characters); each value must be an attribute value (at most"
        " 500 characters, no NUL character)",
        examples=[{"city": "Kazan"}],
    ),
]


class MailingFilter(msgspec.Struct, forbid_unknown_fields=True):
    """A client matches when each non-empty list holds its value and it has every attribute given
    with the value given; all empty means everyone."""

    operator_codes: Annotated[list[OperatorCode], msgspec.Meta(max_length=FILTER_MAX_VALUES)] = msgspec.field(
        default_factory=list
    )
    tags: Annotated[list[Tag], msgspec.Meta(max_length=FILTER_MAX_VALUES)] = msgspec.field(default_factory=list)
    attributes: AttributeFilter = msgspec.field(default_factory=dict)

    def is_empty(self) -> bool:
        return not self.operator_codes and not self.tags and not self.attributes

    def columns(self) -> dict[str, Any]:
        """The stored columns of a mailing's, an audience's or a schedule's filter; sorted and
        deduplicated so that equal filters compare equal."""
        return {
            "filter_operator_codes": sorted(set(self.operator_codes)),
            "filter_tags": sorted(set(self.tags)),
            "filter_attributes": dict(sorted(self.attributes.items())),
        }


class MailingCreate(msgspec.Struct, forbid_unknown_fields=True):
    text: MailingText
    start_at: StartAt
    end_at: EndAt
    kind: Kind
    filter: MailingFilter = msgspec.field(default_factory=MailingFilter)
    send_window: SendWindow | None = None
    audience_id: AudienceId | None = None


class MailingPatch(msgspec.Struct, forbid_unknown_fields=True):
    """The fields to change; the others keep their values, and `send_window: null` removes the window.
    The mailing they make follows the rules of a new one."""

    text: MailingText | msgspec.UnsetType = msgspec.UNSET
    start_at: StartAt | msgspec.UnsetType = msgspec.UNSET
    end_at: EndAt | msgspec.UnsetType = msgspec.UNSET
    kind: Kind | msgspec.UnsetType = msgspec.UNSET
    filter: MailingFilter | msgspec.UnsetType = msgspec.UNSET
    send_window: SendWindow | msgspec.UnsetType | None = msgspec.UNSET
    audience_id: AudienceId | msgspec.UnsetType | None = msgspec.UNSET


class LeftOut(msgspec.Struct):
    """The clients of the filter that the mailing's last plan left out, and why; none before a plan."""

    suppressed: Annotated[int, msgspec.Meta(description="On the suppression list")]
    no_consent: Annotated[int, msgspec.Meta(description="Advertising only: consent missing or revoked")]


class MailingRead(msgspec.Struct):
    id: int
    text: str
    start_at: dt.datetime
    end_at: dt.datetime
    kind: MailingKind
    filter: MailingFilter
    send_window: SendWindow | None
    status: MailingStatus
    encoding: Annotated[Encoding, msgspec.Meta(description="How the text travels: GSM-7 or UCS-2")]
    parts: Annotated[
        int,
        msgspec.Meta(
            description="SMS parts each message of this text takes; for a personalised text, the least"
            " (every value empty): each message stores its own"
        ),
    ]
    paused_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    audience_id: int | None = None
    schedule_id: Annotated[int | None, msgspec.Meta(description="The schedule this mailing is an occurrence of")] = None
    occurrence_at: dt.datetime | None = None
    variables: Annotated[
        list[str], msgspec.Meta(description="The names the text uses ({{ name }}): empty for a plain text")
    ] = msgspec.field(default_factory=list)
    left_out: LeftOut | None = None


# The rules are written once; a docstring cannot be formatted, so they are appended here.
MailingCreate.__doc__ = f"A mailing: who gets which text, and when. {CROSS_FIELD_RULES}"
MailingPatch.__doc__ = f"{MailingPatch.__doc__} {CROSS_FIELD_RULES}"


RetryableStatus = Literal["failed", "expired"]


# Stated in the body's description, and named in the 400 that refuses a retry breaking one of them.
RETRY_RULES = (
    "Rules beyond the schema, each refused with a 400 naming end_at:"
    " end_at must be in the future;"
    " end_at must be after start_at;"
    " end_at is required once the mailing has ended;"
    " end_at must fall between 0001-01-01 and 9999-12-31 in UTC."
)


class RetryRequest(msgspec.Struct, forbid_unknown_fields=True):
    statuses: Annotated[list[RetryableStatus], msgspec.Meta(min_length=1, examples=[["failed", "expired"]])]
    end_at: EndAt | None = None


RetryRequest.__doc__ = (
    "Messages in these statuses go back to pending and are sent again; sent and cancelled messages never are."
    f" `end_at` moves the mailing's end. {RETRY_RULES}"
)


class RetryResult(msgspec.Struct):
    requeued: Annotated[int, msgspec.Meta(description="Messages put back to pending")]
    mailing: MailingRead
