from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from notification.clients.schemas import Phone
from notification.mailings.schemas import MailingText

ClientId = Annotated[
    int,
    msgspec.Meta(
        ge=1,
        le=2**63 - 1,
        description="A client whose fields and attributes a personalised text is rendered with; the message"
        " still goes to `phone`",
    ),
]


class TestSendRequest(msgspec.Struct, forbid_unknown_fields=True):
    """One message to ``phone`` now; ``text`` replaces the mailing's own for this send only, and a
    personalised text is rendered for ``client_id`` (without one, with every value empty). Rules beyond
    the schema, each refused with a 400 naming the field: client_id must name an existing client;
    text must not be blank, must be a valid template and must use only known variables."""

    __test__ = False  # a schema, whatever pytest makes of its name

    phone: Phone
    text: MailingText | None = None
    client_id: ClientId | None = None


class TestSendAnswer(msgspec.Struct):
    """What the provider answered; a refusal or a failure is an answer too (``sent`` is false)."""

    __test__ = False

    id: Annotated[int, msgspec.Meta(description="The msgId the provider saw (a range of its own)")]
    mailing_id: int
    phone: str
    text: str
    encoding: str
    parts: int
    sent: bool
    outcome: Annotated[str, msgspec.Meta(description="sent, transient (worth another try) or permanent")]
    status_code: Annotated[int | None, msgspec.Meta(description="The provider's HTTP status; null: no answer")]
    error: str | None
    latency_ms: float
    created_at: dt.datetime
