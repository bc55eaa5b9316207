"""One provider under test, over HTTP (the fake provider) or SMPP (the fake SMSC, stored as the only
provider so every message goes to it), read the same way: the requests or submits each message got,
when they arrived and whether they were accepted. Delivery guarantee tests take it as the
``sending_provider`` fixture (tests/conftest.py), run once per kind."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from notification.dev.fake_provider import FakeProviderState, RunningFakeProvider
from notification.dev.fake_smsc import RunningFakeSmsc
from tests.delivery.observe import rows


@dataclass(frozen=True, slots=True)
class Request:
    """A send request (HTTP) or ``submit_sm`` (SMPP) of one message."""

    msg_id: int
    arrived_at: dt.datetime
    accepted: bool


@dataclass
class SendingProvider:
    kind: str
    http: RunningFakeProvider | FakeProviderState
    smsc: RunningFakeSmsc | None = None
    _ids_by_phone: dict[str, int] = field(default_factory=dict)

    def set_latency(self, latency_ms: float, jitter_ms: float = 0, seed: int | None = None) -> None:
        if self.smsc is None:
            self.http.set_options(latency_ms=latency_ms, latency_jitter_ms=jitter_ms, seed=seed)
        else:
            self.smsc.set_options(latency_ms=latency_ms, latency_jitter_ms=jitter_ms, seed=seed)

    async def know(self, conninfo: str, mailing_id: int) -> None:
        """An SMSC sees phones, not message ids: the mailing's messages by phone, read while they exist."""
        found = await rows(
            conninfo,
            "SELECT c.phone, m.id FROM messages m JOIN clients c ON c.id = m.client_id WHERE m.mailing_id = %(id)s",
            {"id": mailing_id},
        )
        self._ids_by_phone.update(dict(found))

    def requests(self) -> list[Request]:
        if self.smsc is None:
            return [Request(a.msg_id, a.arrived_at, a.accepted) for a in self.http.arrivals()]
        return [
            Request(self._ids_by_phone[s.destination_addr], s.received_at, s.message_id is not None)
            for s in self.smsc.submits()
            if s.destination_addr in self._ids_by_phone
        ]

    def total_requests(self) -> int:
        """Every request or submit received, whatever its message."""
        if self.smsc is None:
            return len(self.http.arrivals())
        return len(self.smsc.submits())

    def requests_per_message(self) -> dict[int, int]:
        return dict(Counter(r.msg_id for r in self.requests()))

    def accepted_per_message(self) -> dict[int, int]:
        return dict(Counter(r.msg_id for r in self.requests() if r.accepted))
