from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
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

ATTRIBUTE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*\Z"
ATTRIBUTE_NAME_MAX_LENGTH = 64
ATTRIBUTE_VALUE_MAX_LENGTH = 500
MAX_ATTRIBUTES = 50
# An object's keys cannot carry a pattern in the OpenAPI document (schemathesis sends any key an
# object allows): a name is checked by the services instead (check_attribute_names), a documented rule.
AttributeName = str
# Nor do the values' constraints reach the document's additionalProperties: checked with the names.
AttributeValue = str
# Stated in the body's description, and named in the 400 that refuses a body breaking it.
ATTRIBUTE_RULES = (
    "Rules beyond the schema, each refused with a 400 naming the field:"
    " an attribute name must be an attribute name (letters, digits and _, not starting with a digit, 1 to 64"
    " characters) and must not be the name of a client field (phone, tag, operator_code, timezone);"
    " a value must be an attribute value (at most 500 characters, no NUL character)."
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


_ATTRIBUTE_NAME = re.compile(ATTRIBUTE_NAME_PATTERN)


def attribute_name_errors(attributes: Mapping[str, str], field: str) -> list[tuple[str, str]]:
    """Each name of ``attributes`` that a text could not name, and each value too long or holding a
    NUL character, as ``(field.name, why)``."""
    errors = []
    for name, value in attributes.items():
        if len(name) > ATTRIBUTE_NAME_MAX_LENGTH or not _ATTRIBUTE_NAME.match(name):
            errors.append((f"{field}.{name}", f"must be an attribute name: {ATTRIBUTE_NAME_RULE}"))
        elif len(value) > ATTRIBUTE_VALUE_MAX_LENGTH or "\x00" in value:
            errors.append((f"{field}.{name}", f"must be an attribute value: {ATTRIBUTE_VALUE_RULE}"))
    return errors


ATTRIBUTE_NAME_RULE = f"letters, digits and _, not starting with a digit, 1 to {ATTRIBUTE_NAME_MAX_LENGTH} characters"
ATTRIBUTE_VALUE_RULE = f"at most {ATTRIBUTE_VALUE_MAX_LENGTH} characters, no NUL character"


ConsentSource = Annotated[
    str,
    msgspec.Meta(max_length=200, pattern=WITHOUT_NUL, description="Where the consent came from", examples=["web form"]),
]
ConsentAt = Annotated[
    dt.datetime,
    msgspec.Meta(
        tz=True,
        description="ISO 8601 with a UTC offset; in UTC, between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z",
    ),
]
CONSENT_DESCRIPTION = (
    "Consent to advertising stands while `consent_given_at` is set and `consent_revoked_at` is not;"
    " an advertising mailing reaches only such clients. A revocation cancels the client's pending"
    " advertising messages at once. Rules beyond the schema, each refused with a 400 naming the field:"
    " consent_given_at and consent_revoked_at must fall between 0001-01-01 and 9999-12-31 in UTC."
)


class ClientCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A client of the directory; `operator_code` defaults to digits 2-4 of the phone. Its phone must not
    belong to another client (409). An attribute name must not be the name of a client field."""

    phone: Phone
    timezone: TimeZoneName
    operator_code: OperatorCode | None = msgspec.field(default=None)
    tag: Tag = ""
    attributes: Attributes = msgspec.field(default_factory=dict)
    consent_given_at: ConsentAt | None = None
    consent_source: ConsentSource | None = None
    consent_revoked_at: ConsentAt | None = None


class ClientPatch(msgspec.Struct, forbid_unknown_fields=True):
    """The fields to change; the others keep their values. The phone must not belong to another client (409).
    An attribute name must not be the name of a client field."""

    phone: Phone | msgspec.UnsetType = msgspec.UNSET
    timezone: TimeZoneName | msgspec.UnsetType = msgspec.UNSET
    operator_code: OperatorCode | msgspec.UnsetType = msgspec.UNSET
    tag: Tag | msgspec.UnsetType = msgspec.UNSET
    attributes: Attributes | msgspec.UnsetType = msgspec.UNSET
    consent_given_at: ConsentAt | msgspec.UnsetType | None = msgspec.UNSET
    consent_source: ConsentSource | msgspec.UnsetType | None = msgspec.UNSET
    consent_revoked_at: ConsentAt | msgspec.UnsetType | None = msgspec.UNSET


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
    consent_given_at: dt.datetime | None = None
    consent_source: str | None = None
    consent_revoked_at: dt.datetime | None = None


PhonePrefix = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,11}$", description="the first digits of a phone")]


class ClientSearch(msgspec.Struct, forbid_unknown_fields=True):
    """Clients whose phone starts with ``phone_prefix`` and whose other fields equal those given."""

    phone_prefix: PhonePrefix | None = None
    operator_code: OperatorCode | None = None
    tag: Tag | None = None
    timezone: TimeZoneName | None = None


ClientCreate.__doc__ = f"{ClientCreate.__doc__} {CONSENT_DESCRIPTION}"
ClientPatch.__doc__ = f"{ClientPatch.__doc__} {CONSENT_DESCRIPTION}"
