from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from notification.audiences.models import AUDIENCE_NAME_MAX_LENGTH, OPERATOR_NAME_MAX_LENGTH
from notification.db import WITHOUT_NUL
from notification.mailings.schemas import MailingFilter

AudienceName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=AUDIENCE_NAME_MAX_LENGTH,
        pattern=WITHOUT_NUL,
        description="Unique among audiences, not blank",
        examples=["Moscow VIP"],
    ),
]
OperatorName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=OPERATOR_NAME_MAX_LENGTH,
        pattern=WITHOUT_NUL,
        description="Not blank",
        examples=["MTS"],
    ),
]


class AudienceCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A named filter that mailings and schedules use instead of their own; who it matches is decided
    each time a mailing using it is planned. Its name must be unique (409); a 400 names the field when the
    name must not be blank."""

    name: AudienceName
    filter: MailingFilter = msgspec.field(default_factory=MailingFilter)


class AudiencePatch(msgspec.Struct, forbid_unknown_fields=True):
    """The fields to change; mailings and schedules using it see the change at their next planning. The name
    must be unique (409), and a 400 names it when the name must not be blank."""

    name: AudienceName | msgspec.UnsetType = msgspec.UNSET
    filter: MailingFilter | msgspec.UnsetType = msgspec.UNSET


class AudienceRead(msgspec.Struct):
    id: int
    name: str
    filter: MailingFilter
    created_at: dt.datetime
    updated_at: dt.datetime


class TagFacet(msgspec.Struct):
    tag: str
    clients: int


class OperatorCodeFacet(msgspec.Struct):
    code: str
    name: Annotated[str | None, msgspec.Meta(description="The name given to the code, if any")]
    clients: int


class Facets(msgspec.Struct):
    """Every value the directory holds, with its number of clients."""

    tags: list[TagFacet]
    operator_codes: Annotated[
        list[OperatorCodeFacet],
        msgspec.Meta(description="Codes some client has, and named codes no client has yet (0 clients)"),
    ]


class OperatorCodeNaming(msgspec.Struct, forbid_unknown_fields=True):
    """The name an operator code carries; a 400 names the field when the name must not be blank."""

    name: OperatorName


class OperatorCodeRead(msgspec.Struct):
    code: str
    name: str | None
