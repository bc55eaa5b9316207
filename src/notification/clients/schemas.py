from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

Phone = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^7[0-9]{10}$",
        description="7 followed by 10 digits",
        examples=["79161234567"],
    ),
]
OPERATOR_CODE_PATTERN = r"^[0-9]{3}$"
TAG_MAX_LENGTH = 100
OperatorCode = Annotated[str, msgspec.Meta(pattern=OPERATOR_CODE_PATTERN, description="3 digits", examples=["916"])]
Tag = Annotated[str, msgspec.Meta(max_length=TAG_MAX_LENGTH, examples=["vip"])]
TimeZone = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, description="IANA name", examples=["Europe/Moscow"])
]


class ClientCreate(msgspec.Struct, forbid_unknown_fields=True):
    phone: Phone
    timezone: TimeZone
    operator_code: OperatorCode | None = msgspec.field(default=None)
    tag: Tag = ""


class ClientPatch(msgspec.Struct, forbid_unknown_fields=True):
    phone: Phone | msgspec.UnsetType = msgspec.UNSET
    timezone: TimeZone | msgspec.UnsetType = msgspec.UNSET
    operator_code: OperatorCode | msgspec.UnsetType = msgspec.UNSET
    tag: Tag | msgspec.UnsetType = msgspec.UNSET


class ClientRead(msgspec.Struct):
    id: int
    phone: str
    operator_code: str
    tag: str
    timezone: str
    created_at: dt.datetime
    updated_at: dt.datetime


PhonePrefix = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,11}$", description="the first digits of a phone")]


class ClientSearch(msgspec.Struct, forbid_unknown_fields=True):
    """Clients whose phone starts with ``phone_prefix`` and whose other fields equal those given."""

    phone_prefix: PhonePrefix | None = None
    operator_code: OperatorCode | None = None
    tag: Tag | None = None
    timezone: TimeZone | None = None
