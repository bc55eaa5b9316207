"""The send rules: what an answer makes of a message, how long a retry waits, and how close to a
mailing's end a request may still start. Planning, the claim, the senders and the batch writer
all decide by these, and the SQL takes the margin from here as a parameter (``last_request_start``).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

from notification.config import Settings
from notification.messages.models import ErrorKind, MessageStatus
from notification.provider.base import Outcome, SendResult
from notification.send_window import is_open, next_opening

DEADLINE_PASSED = "end_at passed before it could be sent"
END_MARGIN_S = 0.5
"""No provider request starts, and none is waited for, in the last this many seconds before a
mailing's end: a request started a few milliseconds before end_at would reach the provider after
it on a loaded machine, and its answer would be read after it. So every request reaches the
provider, and every ``sent_at`` is taken, before end_at; a message whose turn (or whose retry)
comes later than that expires instead."""


def last_request_start(end_at: dt.datetime) -> dt.datetime:
    """When requests for a mailing ending at ``end_at`` stop starting (see END_MARGIN_S)."""
    return end_at - dt.timedelta(seconds=END_MARGIN_S)


@dataclass(frozen=True, slots=True)
class WindowClosed(SendResult):
    """Not sent because the client's window had closed by the time of the request: the message
    waits for ``opens_at`` (None: not before its last request start) and the claim's attempt does
    not count."""

    opens_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class NextState:
    """What an answer makes of a message."""

    status: MessageStatus
    error: str | None = None
    error_kind: ErrorKind | None = None
    due_at: dt.datetime | None = None


class Attempted(Protocol):
    """A message as the rules see it: how many times it was claimed to be sent."""

    @property
    def attempts(self) -> int: ...


def retry_delay_s(settings: Settings, attempts: int, retry_after_s: float | None) -> float:
    """Capped exponential backoff with jitter; the provider's Retry-After wins when it asks for longer."""
    # The exponent is capped before it is raised: past about 1,000 attempts 2**n overflows a float.
    doublings = min(max(0, attempts - 1), 64)
    ceiling = min(settings.retry_max_s, settings.retry_base_s * 2**doublings)
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311  (jitter, not cryptography)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay


def next_state(
    settings: Settings, message: Attempted, result: SendResult, end_at: dt.datetime, now: dt.datetime
) -> NextState:
    if isinstance(result, WindowClosed):
        if result.opens_at is None:
            return NextState(
                MessageStatus.EXPIRED, "send window never opens before end_at", ErrorKind.WINDOW_NEVER_OPENS
            )
        return NextState(MessageStatus.PENDING, due_at=result.opens_at)
    if result.outcome is Outcome.SENT:
        return NextState(MessageStatus.SENT)
    if result.outcome is Outcome.PERMANENT:
        return NextState(MessageStatus.FAILED, result.error, result.error_kind)
    retry_at = now + dt.timedelta(seconds=retry_delay_s(settings, message.attempts, result.retry_after_s))
    # Refused before the request for want of time (DEADLINE): no later attempt could have more.
    if result.error_kind is ErrorKind.DEADLINE or retry_at >= last_request_start(end_at):
        return NextState(MessageStatus.EXPIRED, result.error, result.error_kind)
    return NextState(MessageStatus.PENDING, result.error, result.error_kind, retry_at)


Window = tuple[dt.time, dt.time]
"""A mailing's send window, local ``(start, end)``; ``end < start`` wraps past midnight."""


def not_now(end_at: dt.datetime, window: Window | None, timezone: str | None, now: dt.datetime) -> SendResult | None:
    """A reason not to send a message now: its mailing's end is too close (the wait in the queue
    may have run up to it), or its client's window has closed meanwhile."""
    if now >= last_request_start(end_at):
        return SendResult(Outcome.TRANSIENT, "end_at passed before the request", ErrorKind.DEADLINE)
    if window is not None and timezone is not None:
        tz = ZoneInfo(timezone)
        if not is_open(window[0], window[1], tz, now):
            opens_at = next_opening(window[0], window[1], tz, now)
            return WindowClosed(Outcome.TRANSIENT, opens_at=opens_at if opens_at < last_request_start(end_at) else None)
    return None
