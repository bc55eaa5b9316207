from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec


class InboundRead(msgspec.Struct):
    id: int
    provider: str
    phone: Annotated[str, msgspec.Meta(description="The sender as the provider gave it", examples=["79161234567"])]
    text: str
    received_at: dt.datetime
    provider_message_id: str | None
    stop_word: Annotated[bool, msgspec.Meta(description="Whether it was a stop word (its sender is suppressed)")]


class InboundIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A message from a phone as an HTTP provider posts it."""

    id: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=128,
            pattern=r"^[^\x00]*$",
            description="The provider's own id of the message: a repeat of it is stored once",
            examples=["mo-4711"],
        ),
    ]
    phone: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=32,
            pattern=r"^[^\x00]*$",
            description="The sender (7XXXXXXXXXX, +7..., 8... and ten digits are read as the directory's number)",
            examples=["79161234567"],
        ),
    ]
    text: Annotated[str, msgspec.Meta(max_length=1600, pattern=r"^[^\x00]*$", examples=["STOP"])]
    received_at: (
        Annotated[dt.datetime, msgspec.Meta(tz=True, description="When the provider received it; default: now")] | None
    ) = None


class InboundStored(msgspec.Struct, kw_only=True):
    id: Annotated[int | None, msgspec.Meta(description="The stored message; null when this id was stored before")]
    stop_word: bool
    suppressed: Annotated[bool, msgspec.Meta(description="Whether the sender was put on the suppression list now")]
