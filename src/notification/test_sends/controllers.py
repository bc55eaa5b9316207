"""``POST /mailings/{id}/test``: one message through the provider, now, from the API process.

The API answers with the provider's own reply, so it makes the request itself rather than
queueing a job for a worker and waiting for one to be free (see ``services``). It is recorded in
``test_sends``, never in ``messages``: the statistics never see it.
"""

from __future__ import annotations

import structlog
from litestar import Controller, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from notification.audit.trail import AuditTrail
from notification.config import Settings
from notification.errors import InvalidInput, problem_responses
from notification.mailings.controllers import MailingId
from notification.mailings.deps import provide_mailing_service
from notification.mailings.services import MailingService
from notification.mailings.sms import measure
from notification.provider.base import Outcome
from notification.test_sends.schemas import TestSendAnswer, TestSendRequest
from notification.test_sends.services import NoRoomInRateBudget, TestSendService

logger = structlog.get_logger(__name__)


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
