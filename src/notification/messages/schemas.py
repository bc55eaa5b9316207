from __future__ import annotations

import datetime as dt

import msgspec

from notification.messages.models import DeliveryState, ErrorKind, MessageStatus


class MessageRead(msgspec.Struct):
    id: int
    mailing_id: int
    client_id: int | None
    status: MessageStatus
    created_at: dt.datetime
    due_at: dt.datetime
    sent_at: dt.datetime | None
    attempts: int
    last_error: str | None
    error_kind: ErrorKind | None = None
    delivery_state: DeliveryState | None = None
    """What its receipt said (or ``unknown`` past the receipt timeout); None: no receipt yet."""
    delivery_error: str | None = None
    receipt_at: dt.datetime | None = None
