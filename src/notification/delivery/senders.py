"""The sender pool: a fixed set of long-lived tasks, shared by every batch a worker runs, each
taking one claimed message at a time through its provider's circuit breaker and rate budget to
the provider, and handing the answer to the message's batch."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from notification.delivery.breaker import CircuitBreaker
from notification.delivery.policy import WindowClosed, last_request_start, not_now
from notification.mailings.sms import SmsText
from notification.messages.models import ErrorKind
from notification.provider import metrics as provider_metrics
from notification.provider.base import Outcome, OutgoingMessage, Provider, SendResult
from notification.provider.rate_limit import BudgetUnavailable, RateBudget

if TYPE_CHECKING:
    from notification.delivery.batch import RunningBatch
    from notification.delivery.claim import ClaimedMessage

logger = structlog.get_logger(__name__)

HTTP_TOO_MANY_REQUESTS = 429


@dataclass(slots=True, eq=False)
class Lane:
    """One provider as the senders reach it: behind its own circuit breaker and rate budget, so
    that one provider's outage or limit never holds the requests to another."""

    name: str
    provider: Provider
    breaker: CircuitBreaker
    budget: RateBudget
    in_flight: int = 0
    """Sends under way through it: a replaced provider is closed once they have answered."""

    def takes_now(self) -> bool:
        """Neither its breaker open nor held by a 429 or a throttling answer."""
        if not self.breaker.takes_now() or self.budget.hold_s > 0:
            return False
        held_for_s: float = getattr(self.provider, "held_for_s", 0.0)
        return held_for_s <= 0


NO_PROVIDER = SendResult(Outcome.TRANSIENT, "no enabled provider routes this message", ErrorKind.OTHER)


@dataclass(frozen=True, slots=True)
class Send:
    batch: RunningBatch
    message: ClaimedMessage


class SenderPool:
    """``size`` sender tasks pulling from one queue: no task per message, and the providers never
    see more than ``size`` requests from this process."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._queue: asyncio.Queue[Send] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def started(self) -> bool:
        return bool(self._tasks)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._sender(), name=f"provider-sender-{i}") for i in range(self.size)]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def put(self, batch: RunningBatch, message: ClaimedMessage) -> None:
        self._queue.put_nowait(Send(batch, message))

    async def _sender(self) -> None:
        while True:
            send = await self._queue.get()
            batch, message = send.batch, send.message
            if not batch.may_send(message):
                batch.give_back(message)
                continue
            lane = batch.lane_for(message)
            if lane is None:
                batch.answered(message, NO_PROVIDER, None)
                continue
            lane.in_flight += 1
            try:
                result = await send_one(message, batch, lane)
            except Exception as exc:  # noqa: BLE001  (a bug here must not kill the sender)
                failure = SendResult(Outcome.TRANSIENT, f"unexpected error: {type(exc).__name__}", ErrorKind.OTHER)
                result = (failure, None)
            finally:
                lane.in_flight -= 1
            if result is None:
                batch.give_back(message)
            else:
                batch.answered(message, result[0], lane.name, result[1])


async def send_one(
    message: ClaimedMessage, batch: RunningBatch, lane: Lane
) -> tuple[SendResult, SmsText | None] | None:
    """``lane``'s answer with the cost of the text it carried, the reason there was no request
    (with no cost), or None when no request was made and the message goes back untouched (its
    batch stopped, or the rate budget could not be read)."""
    now = dt.datetime.now(dt.UTC)
    early = _not_now(message, batch, now)
    if early is not None:
        return early, None
    return await _request(message, batch, lane)


async def _request(
    message: ClaimedMessage, batch: RunningBatch, lane: Lane
) -> tuple[SendResult, SmsText | None] | None:
    """The answer with the cost of the text the provider was asked to send (None: a reason found
    before asking)."""
    now = dt.datetime.now(dt.UTC)
    # Rendered at its turn, from the client as claimed: a change made before then is used. The
    # rate budget is asked for that text's parts.
    text, sms = batch.text_for(message)
    rendered_from = batch.text
    held = await lane.breaker.admit()
    result: SendResult | None = None
    try:
        if not batch.may_send(message):
            return None
        if held:
            # The breaker held the request a while: its mailing's end or its client's window may
            # have come meanwhile. An answer not asked for is not the provider's failure either.
            now = dt.datetime.now(dt.UTC)
            early = _not_now(message, batch, now)
            if early is not None:
                return early, None
        try:
            waited = await lane.budget.admit(sms.parts)
        except BudgetUnavailable:
            return None
        if waited:
            # The same, after a wait for room in the provider's rate budget.
            now = dt.datetime.now(dt.UTC)
            if not batch.may_send(message):
                return None
            early = _not_now(message, batch, now)
            if early is not None:
                return early, None
        if batch.text is not rendered_from:
            # The mailing's text changed while this waited for the breaker or the budget: the
            # request carries the new one, as every request starting after the change does.
            text, sms = batch.text_for(message)
        time_left_s = (last_request_start(batch.end_at) - now).total_seconds()
        outgoing = OutgoingMessage(message.id, message.phone, text)
        result = await lane.provider.send(outgoing, time_left_s)
    finally:
        await lane.breaker.record(result)
    if result.status_code == HTTP_TOO_MANY_REQUESTS:
        lane.budget.provider_asked_to_wait(result.retry_after_s)
    provider_metrics.observe(lane.name, result)
    batch.log.info(
        "provider answered",
        provider=lane.name,
        message_id=message.id,
        client_id=message.client_id,
        outcome=result.outcome.value,
        status_code=result.status_code,
        error=result.error,
        attempt=message.attempts,
        latency_ms=round(result.latency_s * 1000, 1),
    )
    return result, sms


def _not_now(message: ClaimedMessage, batch: RunningBatch, now: dt.datetime) -> SendResult | None:
    early = not_now(batch.end_at, batch.window, message.timezone, now)
    if isinstance(early, WindowClosed):
        opens_at = early.opens_at.isoformat() if early.opens_at is not None else None
        batch.log.info("send window closed", message_id=message.id, opens_at=opens_at)
    return early
