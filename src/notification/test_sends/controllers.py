"""``POST /mailings/{id}/test``: one message through the provider, now, from the API process.

The API answers with the provider's own reply, so it makes the request itself rather than
queueing a job for a worker and waiting for one to be free. The provider client and the rate
budget are imported here, at the first test send, never when the app is built: the API process
stays free of them until an operator asks for one. The send takes its parts from the shared rate
budget like any other (waiting at most a provider timeout), and a 429 it meets holds the workers
too. It is recorded in ``test_sends``, never in ``messages``: the statistics never see it.
"""

from __future__ import annotations

import asyncio

import structlog
from litestar import Controller, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_200_OK, HTTP_429_TOO_MANY_REQUESTS, HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy import text as sql_text

from notification.audit.models import AuditAction, AuditEntity
from notification.audit.trail import AuditTrail
from notification.config import Settings
from notification.errors import InvalidInput, problem_responses
from notification.mailings.deps import MailingId, provide_mailing_service
from notification.mailings.services import MailingService
from notification.mailings.sms import measure
from notification.observability import bind_ids
from notification.test_sends.schemas import TestSendAnswer, TestSendRequest

logger = structlog.get_logger(__name__)

_RECORD = sql_text(
    "INSERT INTO test_sends (mailing_id, phone, text) VALUES (:mailing_id, :phone, :text) RETURNING id, created_at"
)
_ANSWER = sql_text(
    "UPDATE test_sends SET outcome = :outcome, status_code = :status_code, error = :error, answered_at = now()"
    " WHERE id = :id"
)


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


class TestSendController(Controller):
    __test__ = False  # a controller, whatever pytest makes of its name

    path = "/mailings"
    tags = ["mailings"]
    dependencies = {
        "mailings": Provide(provide_mailing_service),
        "settings": Provide(provide_settings, sync_to_thread=False),
    }

    @post(
        "/{mailing_id:int}/test",
        status_code=HTTP_200_OK,
        summary="Send one message of a mailing now to a given phone, outside the statistics",
        description=(
            "The mailing's text, or `text` for this send only (which must not be blank), goes to `phone` "
            "through the provider right away, whatever the mailing's status, window or end. The answer is "
            "the provider's reply: a refusal or a failure is a 200 with `sent: false`. 503 when the "
            "provider's rate budget has no room within a request's timeout (after a 429, for its Retry-After)."
        ),
        responses=problem_responses(400, 401, 404, 503),
    )
    async def send_test(
        self,
        mailings: MailingService,
        audit: AuditTrail,
        settings: Settings,
        mailing_id: MailingId,
        data: TestSendRequest,
    ) -> TestSendAnswer:
        mailing = await mailings.get_mailing(mailing_id)
        text = mailing.text if data.text is None else data.text
        if not text.strip():
            raise InvalidInput.of("text", "must not be blank")
        sms = measure(text)
        session = mailings.repository.session
        # Recorded before the request: an API that dies meanwhile leaves the attempt on record.
        row = (await session.execute(_RECORD, {"mailing_id": mailing_id, "phone": data.phone, "text": text})).one()
        send_id, created_at = int(row.id), row.created_at
        changes: dict[str, tuple[object, object]] = {"test_send_id": (None, send_id), "phone": (None, data.phone)}
        if data.text is not None:
            changes["text"] = (None, text)
        await audit.record(AuditAction.TEST_SEND, AuditEntity.MAILING, mailing_id, changes)
        await session.commit()
        bind_ids(mailing_id=mailing_id, message_id=send_id)

        from notification.provider.client import Outcome, ProviderClient
        from notification.provider.rate_limit import BudgetUnavailable, RateBudget

        budget = RateBudget(settings.provider_rate_limit, settings.psycopg_conninfo)
        provider = ProviderClient(settings)
        try:
            try:
                await budget.refresh_hold()
                await asyncio.wait_for(budget.admit(sms.parts), settings.provider_timeout_s)
            except (TimeoutError, BudgetUnavailable):
                logger.warning("test message not sent: no room in the provider's rate budget", phone=data.phone)
                raise HTTPException(
                    status_code=HTTP_503_SERVICE_UNAVAILABLE,
                    detail="The provider's rate budget has no room now; try again later",
                    headers={"Retry-After": str(max(1, round(budget.hold_s)))},
                ) from None
            result = await provider.send(send_id, data.phone, text, settings.provider_timeout_s)
            if result.status_code == HTTP_429_TOO_MANY_REQUESTS:
                await budget.hold_everyone(result.retry_after_s)
        finally:
            await provider.aclose()
            await budget.aclose()
        params = {
            "id": send_id,
            "outcome": result.outcome.value,
            "status_code": result.status_code,
            "error": result.error,
        }
        await session.execute(_ANSWER, params)
        await session.commit()
        logger.info(
            "test message sent",
            phone=data.phone,
            outcome=result.outcome.value,
            status_code=result.status_code,
            error=result.error,
            latency_ms=round(result.latency_s * 1000, 1),
        )
        return TestSendAnswer(
            id=send_id,
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
            created_at=created_at,
        )
