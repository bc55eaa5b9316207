"""The one place a message's state changes: the named statements of ``state.sql``.

The engine, the entities' services and retention all run these, so a cancellation, an expiry or
a requeue writes the same columns whoever makes it. Loaded here, in the messages entity, so that
the entities reach them without importing the engine.
"""

from __future__ import annotations

from notification.lib.sql import load
from notification.messages.models import ErrorKind, MessageStatus

MESSAGE_ENUMS = {"status": MessageStatus, "error_kind": ErrorKind}

state = load(__package__, "state.sql", enums=MESSAGE_ENUMS)
