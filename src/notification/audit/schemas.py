from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

from notification.audit.models import AuditAction, AuditEntity, Via


class FieldChange(msgspec.Struct):
    old: Annotated[Any, msgspec.Meta(description="The value before; null for a creation", examples=["vip"])]
    new: Annotated[Any, msgspec.Meta(description="The value after; null for a deletion", examples=["regular"])]


class AuditEntryRead(msgspec.Struct):
    """One change made through the API or the console, or one sign-in event of the console."""

    id: int
    at: dt.datetime
    actor: Annotated[
        str,
        msgspec.Meta(
            description="An email, or `api-token:` and the first 4 hex digits of the token's SHA-256",
            examples=["api-token:9f86"],
        ),
    ]
    via: Via
    action: AuditAction
    entity: AuditEntity
    entity_id: Annotated[int | None, msgspec.Meta(description="The client's or mailing's id", examples=[42])]
    changes: Annotated[
        dict[str, FieldChange],
        msgspec.Meta(description="Each changed field's old and new value; phone numbers masked to their last 4 digits"),
    ]
