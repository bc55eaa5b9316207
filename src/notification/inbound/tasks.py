"""The reply to a stop word, sent by a worker through the provider the word came from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import structlog
from procrastinate import Blueprint, JobContext, RetryStrategy

from notification.jobs import MAINTENANCE_QUEUE, settings_of
from notification.provider.base import Outcome, OutgoingMessage, Provider

logger = structlog.get_logger(__name__)

blueprint = Blueprint()


class _Lane(Protocol):
    provider: Provider


class _Lanes(Protocol):
    """What this task needs of the worker's delivery: its providers by name (the engine itself is
    the worker's to import)."""

    @property
    def lanes(self) -> Mapping[str, _Lane]: ...


STOP_REPLY_IDS_FROM = 2**61
"""A reply's id, which the provider takes as its idempotency key, is this plus the inbound message's:
a range neither messages (from 1) nor test sends (from 2**62) reach."""


@blueprint.task(
    name="send_stop_reply", queue=MAINTENANCE_QUEUE, retry=RetryStrategy(max_attempts=5, wait=5), pass_context=True
)
async def send_stop_reply(context: JobContext, provider: str, phone: str, inbound_id: int) -> None:
    """The confirmation goes to a number just suppressed: it is the one message the list lets
    through, and only in answer to the stop word itself."""
    settings = settings_of(context)
    delivery: _Lanes | None = context.additional_context.get("delivery")
    lane = delivery.lanes.get(provider) if delivery is not None else None
    if lane is None or not settings.stop_reply:
        logger.warning("stop reply not sent: no such provider here, or no reply set", provider=provider)
        return
    result = await lane.provider.send(
        OutgoingMessage(STOP_REPLY_IDS_FROM + inbound_id, phone, settings.stop_reply), settings.provider_timeout_s
    )
    logger.info("stop reply sent", provider=provider, phone=phone, outcome=result.outcome.value, error=result.error)
    if result.outcome is Outcome.TRANSIENT:
        msg = f"stop reply to inbound message {inbound_id}: {result.error}"
        raise RuntimeError(msg)
