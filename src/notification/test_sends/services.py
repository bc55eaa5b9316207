"""A test send from start to end: recorded, sent through the provider, its answer recorded.

The service owns its two commits: the attempt is committed before the request (an API that dies
meanwhile leaves it on record, with no answer) and the answer after it; no transaction stays open
while the provider takes its time. The provider and its rate budget come from the provider
registry, built here at the first test send and never when the app is built: the API process stays
free of them until an operator asks for one. The send takes its parts from the shared rate budget
like any other (waiting at most a provider timeout), and a 429 it meets holds the workers too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from notification.audit.models import AuditAction, AuditEntity
from notification.audit.trail import AuditTrail
from notification.clients.models import Client
from notification.config import Settings
from notification.errors import Conflict, InvalidInput
from notification.lib.sql import load
from notification.mailings.services import MailingService
from notification.mailings.sms import measure
from notification.observability import bind_ids
from notification.provider.base import Outcome, SendResult
from notification.suppressions.models import Suppression
from notification.test_sends.schemas import TestSendAnswer, TestSendRequest
from notification.texts.service import NOBODY, check_text
from notification.texts.templates import Compiled, Recipient

if TYPE_CHECKING:
    from notification.provider.registry import ProviderRegistry, RegisteredProvider

logger = structlog.get_logger(__name__)

HTTP_TOO_MANY_REQUESTS = 429

statements = load(__package__, "queries.sql")


@dataclass(frozen=True, slots=True)
class TestSent:
    """A test send and the provider's answer to it."""

    __test__ = False  # a result, whatever pytest makes of its name

    id: int
    created_at: dt.datetime
    result: SendResult


class NoRoomInRateBudget(Exception):
    """The provider's rate budget had no room within a request's timeout (or could not be read)."""

    def __init__(self, hold_s: float) -> None:
        super().__init__("no room in the provider's rate budget")
        self.hold_s = hold_s


class TestSendService:
    __test__ = False  # a service, whatever pytest makes of its name

    def __init__(
        self, session: AsyncSession | async_scoped_session[AsyncSession], audit: AuditTrail, settings: Settings
    ) -> None:
        self.session = session
        self.audit = audit
        self.settings = settings

    async def send(self, mailing_id: int, phone: str, text: str, parts: int, *, text_given: bool) -> TestSent:
        """Raises NoRoomInRateBudget, the attempt then on record with no answer."""
        send_id, created_at = await self._record(mailing_id, phone, text, text_given=text_given)
        bind_ids(mailing_id=mailing_id, message_id=send_id)
        result = await self._through_provider(send_id, phone, text, parts)
        params = {
            "id": send_id,
            "outcome": result.outcome.value,
            "status_code": result.status_code,
            "error": result.error,
        }
        await self.session.execute(statements.text("answer"), params)
        await self.session.commit()
        return TestSent(send_id, created_at, result)

    async def _record(self, mailing_id: int, phone: str, text: str, *, text_given: bool) -> tuple[int, dt.datetime]:
        row = (
            await self.session.execute(
                statements.text("record"), {"mailing_id": mailing_id, "phone": phone, "text": text}
            )
        ).one()
        send_id, created_at = int(row.id), row.created_at
        changes: dict[str, tuple[object, object]] = {"test_send_id": (None, send_id), "phone": (None, phone)}
        if text_given:
            changes["text"] = (None, text)
        await self.audit.record(AuditAction.TEST_SEND, AuditEntity.MAILING, mailing_id, changes)
        await self.session.commit()
        return send_id, created_at

    async def _through_provider(self, send_id: int, phone: str, text: str, parts: int) -> SendResult:
        from notification.provider.base import OutgoingMessage
        from notification.provider.rate_limit import BudgetUnavailable

        timeout_s = self.settings.provider_timeout_s
        # One timeout for the whole answer: the person waiting does not care whether the budget or
        # the provider (an SMSC it cannot bind to, say) took the time.
        deadline = time.monotonic() + timeout_s
        providers = await _providers_now(self.settings)
        entry = _routed(providers, phone)
        try:
            try:
                await entry.budget.refresh_hold()
                await asyncio.wait_for(entry.budget.admit(parts), deadline - time.monotonic())
            except (TimeoutError, BudgetUnavailable):
                raise NoRoomInRateBudget(entry.budget.hold_s) from None
            time_left_s = deadline - time.monotonic()
            result = await entry.provider.send(OutgoingMessage(send_id, phone, text), time_left_s)
            if result.status_code == HTTP_TOO_MANY_REQUESTS:
                await entry.budget.hold_everyone(result.retry_after_s)
        finally:
            await providers.aclose()
        return result


async def _providers_now(settings: Settings) -> ProviderRegistry:
    """The stored providers when there are some, else the settings' one: what the workers use."""
    from psycopg import AsyncConnection

    from notification.provider.registry import ProviderRegistry
    from notification.provider.secrets import SecretBox
    from notification.provider.store import read_config

    async with await AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        config = await read_config(conn, SecretBox.from_settings(settings))
    enabled = [spec for spec in config.providers if spec.enabled]
    if not enabled:
        return ProviderRegistry.from_settings(settings)
    registry = ProviderRegistry.from_specs(enabled, settings)
    registry.rules = config.rules
    return registry


def _routed(providers: ProviderRegistry, phone: str) -> RegisteredProvider:
    """The first provider of the first route matching the phone (its operator code is not known
    here), else the default."""
    from notification.provider.routes import Router

    router = Router(providers.rules, providers.names, providers.default.name)
    names = router.candidates(None, phone)
    return providers[names[0]] if names else providers.default


async def _recipient(session: AsyncSession | async_scoped_session[AsyncSession], client_id: int | None) -> Recipient:
    """Whom a personalised text is rendered for: the client asked for, or nobody (every value empty)."""
    if client_id is None:
        return NOBODY
    client = await session.get(Client, client_id)
    if client is None:
        raise InvalidInput.of("client_id", f"must name an existing client ({client_id} does not exist)")
    return Recipient(client.phone, client.tag, client.operator_code, client.timezone, client.attributes)


async def send_test_message(
    mailings: MailingService, audit: AuditTrail, settings: Settings, mailing_id: int, data: TestSendRequest
) -> TestSendAnswer:
    """The API's and the console's test send: the provider's answer; a 503 when its rate budget
    has no room in time."""
    mailing = await mailings.get_mailing(mailing_id)
    session = mailings.repository.session
    if await session.get(Suppression, data.phone) is not None:
        # A number that said stop gets nothing, a test included; the operator's own phone is not
        # on the list unless someone put it there.
        raise Conflict("phone", f"phone {data.phone} is on the suppression list: nothing is sent to it")
    template = mailing.text if data.text is None else data.text
    if not template.strip():
        raise InvalidInput.of("text", "must not be blank")
    if data.text is not None:
        await check_text(session, template)
    text = Compiled(template).render(await _recipient(session, data.client_id))
    sms = measure(text)
    service = TestSendService(mailings.repository.session, audit, settings)
    try:
        sent = await service.send(mailing_id, data.phone, text, sms.parts, text_given=data.text is not None)
    except NoRoomInRateBudget as full:
        logger.warning("test message not sent: no room in the provider's rate budget", phone=data.phone)
        raise HTTPException(
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
            detail="The provider's rate budget has no room now; try again later",
            headers={"Retry-After": str(max(1, round(full.hold_s)))},
        ) from None
    result = sent.result
    logger.info(
        "test message sent",
        phone=data.phone,
        outcome=result.outcome.value,
        status_code=result.status_code,
        error=result.error,
        latency_ms=round(result.latency_s * 1000, 1),
    )
    return TestSendAnswer(
        id=sent.id,
        mailing_id=mailing_id,
        phone=data.phone,
        text=text,
        encoding=sms.encoding.value,
        parts=sms.parts,
        sent=result.outcome is Outcome.SENT,
        outcome=result.outcome.value,
        status_code=result.status_code,
        error=result.error,
        latency_ms=round(result.latency_s * 1000, 1),
        created_at=sent.created_at,
    )
