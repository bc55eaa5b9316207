from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from notification.clients.schemas import Phone
from notification.db import WITHOUT_NUL
from notification.suppressions.models import SuppressionReason

SOURCE_MAX_LENGTH = 200
Source = Annotated[
    str,
    msgspec.Meta(
        max_length=SOURCE_MAX_LENGTH,
        pattern=WITHOUT_NUL,
        description="Where it came from: a ticket, a complaint's reference, a note",
        examples=["ticket 4512"],
    ),
]
Reason = Annotated[
    SuppressionReason,
    msgspec.Meta(
        description="stop_word (the subscriber replied with one), operator_request, complaint, or invalid_number"
        " (a provider said the number does not exist)",
        examples=["operator_request"],
    ),
]


class SuppressionCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A number no mailing may reach from now on, service or advertising: pending messages to it are
    cancelled at once. A number already on the list is a conflict (409)."""

    phone: Phone
    reason: Reason
    source: Source = ""


class SuppressionRead(msgspec.Struct):
    phone: Annotated[str, msgspec.Meta(examples=["79161234567"])]
    reason: SuppressionReason
    source: str
    created_at: dt.datetime
    created_by: Annotated[str, msgspec.Meta(description="Who put it there: a person, a token, or inbound:<provider>")]


class SuppressionImport(msgspec.Struct):
    added: Annotated[int, msgspec.Meta(description="Numbers put on the list by this import")]
    already_listed: Annotated[
        int, msgspec.Meta(description="Numbers of the file already on the list, left as they were")
    ]
