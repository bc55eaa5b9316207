"""``POST /mailings/{id}/test``: one message through the provider, now, from the API process.

The API answers with the provider's own reply, so it makes the request itself rather than
queueing a job for a worker and waiting for one to be free (``services.send_test_message``). It is recorded in
``test_sends``, never in ``messages``: the statistics never see it.
"""

from __future__ import annotations

from litestar import Controller, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK

from notification.audit.trail import AuditTrail
from notification.config import Settings
from notification.errors import problem_responses
from notification.mailings.deps import MailingId, provide_mailing_service
from notification.mailings.services import MailingService
from notification.test_sends.schemas import TestSendAnswer, TestSendRequest
from notification.test_sends.services import send_test_message


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
            " 409 when `phone` is on the suppression list: nothing is sent to it."
        ),
        responses=problem_responses(400, 401, 404, 409, 503),
    )
    async def send_test(
        self,
        mailings: MailingService,
        audit: AuditTrail,
        settings: Settings,
        mailing_id: MailingId,
        data: TestSendRequest,
    ) -> TestSendAnswer:
        return await send_test_message(mailings, audit, settings, mailing_id, data)
