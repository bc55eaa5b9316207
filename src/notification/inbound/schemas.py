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
