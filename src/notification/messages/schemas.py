from __future__ import annotations

import datetime as dt

import msgspec

from notification.messages.models import ErrorKind, MessageStatus


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
