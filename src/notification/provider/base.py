"""What every kind of provider is to the engine: one protocol, whatever it speaks underneath.

The sending path, test sends and metrics know a provider only through :class:`Provider`; the HTTP
client and the SMPP client are its implementations. A provider classifies each of its own answers
(``SendResult``) where it reads them, so the engine never re-parses an error text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from notification.messages.models import ErrorKind


class Outcome(enum.Enum):
    SENT = "sent"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    error: str | None = None
    error_kind: ErrorKind | None = None
    """Decided here, where the answer is read, and stored with the message: never re-parsed from ``error``."""
    status_code: int | None = None
    """The provider's own answer code: an HTTP status, or an SMPP command status."""
    retry_after_s: float | None = None
    latency_s: float = 0.0
    provider_message_id: str | None = None
    """The provider's own id of the accepted message (an SMSC's ``message_id``), which its
    delivery receipts name."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message as a provider sends it: ``id`` is ours and the idempotency key."""

    id: int
    phone: str
    text: str


@dataclass(frozen=True, slots=True)
class Capabilities:
    receipts: bool = False
    """The provider reports what reached the phone (an SMSC's ``deliver_sm``, an HTTP callback)."""
    inbound: bool = False
    """Mobile-originated messages arrive through it."""


@runtime_checkable
class Provider(Protocol):
    """A way to hand one message to the SMS world.

    ``send`` never raises for the provider's own failures: it classifies them. It is over
    within ``time_left_s``; with no time left it makes no request."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    async def open(self) -> None: ...

    async def send(self, message: OutgoingMessage, time_left_s: float) -> SendResult: ...

    async def aclose(self) -> None: ...
