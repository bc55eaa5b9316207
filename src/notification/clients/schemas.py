from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from notification.db import WITHOUT_NUL
from notification.timezones import TimeZoneName

# The lengths as well as the patterns: a regex's `$` also matches before a final newline.
Phone = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^7[0-9]{10}$",
        min_length=11,
        max_length=11,
        description="7 followed by 10 digits",
        examples=["79161234567"],
    ),
]
OPERATOR_CODE_PATTERN = r"^[0-9]{3}$"
TAG_MAX_LENGTH = 100
OperatorCode = Annotated[
    str,
    msgspec.Meta(pattern=OPERATOR_CODE_PATTERN, min_length=3, max_length=3, description="3 digits", examples=["916"]),
]
Tag = Annotated[
    str,
    msgspec.Meta(
        max_length=TAG_MAX_LENGTH, pattern=WITHOUT_NUL, description="Free text, may be empty", examples=["vip"]
    ),
]

ATTRIBUTE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ATTRIBUTE_NAME_MAX_LENGTH = 64
ATTRIBUTE_VALUE_MAX_LENGTH = 500
MAX_ATTRIBUTES = 50
AttributeName = Annotated[
    str,
    msgspec.Meta(
        pattern=ATTRIBUTE_NAME_PATTERN,
        min_length=1,
        max_length=ATTRIBUTE_NAME_MAX_LENGTH,
        description="A name a text can use: letters, digits and _, not starting with a digit",
        examples=["name"],
    ),
]
AttributeValue = Annotated[str, msgspec.Meta(max_length=ATTRIBUTE_VALUE_MAX_LENGTH, pattern=WITHOUT_NUL)]
# Stated in the body's description, and named in the 400 that refuses a body breaking it.
ATTRIBUTE_RULES = (
    "Rules beyond the schema, each refused with a 400 naming the field:"
    " an attribute name must not be the name of a client field (phone, tag, operator_code, timezone)."
)
Attributes = Annotated[
    dict[AttributeName, AttributeValue],
    msgspec.Meta(
        max_length=MAX_ATTRIBUTES,
        description="Named values about the client (name, city...) that texts can use as {{ name }};"
        " a change replaces the whole object. " + ATTRIBUTE_RULES,
        examples=[{"name": "Anna", "city": "Kazan"}],
    ),
]


class ClientCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A client of the directory; `operator_code` defaults to digits 2-4 of the phone. Its phone must not
    belong to another client (409). An attribute name must not be the name of a client field."""

    phone: Phone
    timezone: TimeZoneName
    operator_code: OperatorCode | None = msgspec.field(default=None)
    tag: Tag = ""
    attributes: Attributes = msgspec.field(default_factory=dict)


class ClientPatch(msgspec.Struct, forbid_unknown_fields=True):
    """The fields to change; the others keep their values. The phone must not belong to another client (409).
    An attribute name must not be the name of a client field."""

    phone: Phone | msgspec.UnsetType = msgspec.UNSET
    timezone: TimeZoneName | msgspec.UnsetType = msgspec.UNSET
    operator_code: OperatorCode | msgspec.UnsetType = msgspec.UNSET
    tag: Tag | msgspec.UnsetType = msgspec.UNSET
    attributes: Attributes | msgspec.UnsetType = msgspec.UNSET


class ClientRead(msgspec.Struct):
    id: int
    phone: Annotated[str, msgspec.Meta(examples=["79161234567"])]
    operator_code: Annotated[str, msgspec.Meta(examples=["916"])]
    tag: Annotated[str, msgspec.Meta(examples=["vip"])]
    timezone: Annotated[str, msgspec.Meta(examples=["Europe/Moscow"])]
    created_at: dt.datetime
    updated_at: dt.datetime
    attributes: Annotated[dict[str, str], msgspec.Meta(examples=[{"name": "Anna", "city": "Kazan"}])] = msgspec.field(
        default_factory=dict
    )


PhonePrefix = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,11}$", description="the first digits of a phone")]


class ClientSearch(msgspec.Struct, forbid_unknown_fields=True):
    """Clients whose phone starts with ``phone_prefix`` and whose other fields equal those given."""

    phone_prefix: PhonePrefix | None = None
    operator_code: OperatorCode | None = None
    tag: Tag | None = None
    timezone: TimeZoneName | None = None
