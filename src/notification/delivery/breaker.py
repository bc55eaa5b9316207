"""A circuit breaker in front of a provider, one per provider in each worker process.

Closed, every request may start. After ``threshold`` transient failures in a row (the provider
down, timing out, answering 5xx or 429) it opens: no request starts for a pause, then a single
probe goes out. A failed probe opens it again for twice as long (up to ``max_pause_s``); a
successful one lets the requests back in gradually, twice as many in flight after each success,
until the full capacity is reached and it closes. An outage thus costs the requests already in
flight when it began, the ``threshold`` that tripped it, and one probe per pause.

Waiting senders hold their messages (their leases are renewed by the watcher); each checks the
mailing's end and its batch again once admitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time

import structlog

from notification.provider.base import Outcome, SendResult

logger = structlog.get_logger(__name__)


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self, capacity: int, threshold: int = 20, first_pause_s: float = 1.0, max_pause_s: float = 30.0
    ) -> None:
        self.capacity = capacity
        self.threshold = threshold
        self.first_pause_s = first_pause_s
        self.max_pause_s = max_pause_s
        self.state = BreakerState.CLOSED
        self._failures_in_row = 0
        self._pause_s = first_pause_s
        self._reopen_at = 0.0
        self._allowance = capacity
        self._in_flight = 0
        self._changed = asyncio.Condition()

    def takes_now(self) -> bool:
        """Whether a request would start without waiting: routing tries another provider when not.
        An open breaker whose pause is over takes one (its probe)."""
        if self.state is BreakerState.OPEN:
            return time.monotonic() >= self._reopen_at
        return self._in_flight < self._allowance

    async def admit(self) -> bool:
        """Waits until a request may start; every admit is followed by one ``record``. True when
        it had to wait (what was true of the request before may no longer be)."""
        if self.state is BreakerState.CLOSED and self._in_flight < self._allowance:
            self._in_flight += 1  # the common case: no lock, no wait
            return False
        async with self._changed:
            while True:
                if self.state is BreakerState.OPEN:
                    wait_s = self._reopen_at - time.monotonic()
                    if wait_s > 0:
                        # Woken early by nothing but a state change; re-checks on return.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._changed.wait(), wait_s)
                        continue
                    self._half_open()
                if self._in_flight < self._allowance:
                    self._in_flight += 1
                    return True
                await self._changed.wait()

    async def record(self, result: SendResult | None) -> None:
        """The answer of an admitted request (None: it was not made after all)."""
        self._in_flight -= 1
        was = self.state
        if result is not None:
            if result.outcome is Outcome.TRANSIENT and result.status_code != 200:
                self._failed()
            else:
                self._answered()
        # Closed before and after, nobody waits: senders never outnumber the capacity.
        if was is not BreakerState.CLOSED or self.state is not BreakerState.CLOSED:
            async with self._changed:
                self._changed.notify_all()

    def _failed(self) -> None:
        self._failures_in_row += 1
        if self.state is BreakerState.HALF_OPEN:
            self._open(min(self.max_pause_s, self._pause_s * 2))
        elif self.state is BreakerState.CLOSED and self._failures_in_row >= self.threshold:
            self._open(self.first_pause_s)

    def _answered(self) -> None:
        self._failures_in_row = 0
        if self.state is BreakerState.HALF_OPEN:
            self._allowance = min(self.capacity, self._allowance * 2)
            if self._allowance >= self.capacity:
                self.state = BreakerState.CLOSED
                self._pause_s = self.first_pause_s
                logger.warning("provider circuit closed: the provider answers again")

    def _open(self, pause_s: float) -> None:
        self.state = BreakerState.OPEN
        self._pause_s = pause_s
        self._reopen_at = time.monotonic() + pause_s
        self._allowance = 0
        logger.warning("provider circuit open", pause_s=pause_s, failures_in_row=self._failures_in_row)

    def _half_open(self) -> None:
        self.state = BreakerState.HALF_OPEN
        self._allowance = 1
