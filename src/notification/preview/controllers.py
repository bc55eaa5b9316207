from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK
from sqlalchemy.ext.asyncio import AsyncSession

from notification.errors import problem_responses
from notification.mailings.deps import MailingId, provide_mailing_service
from notification.mailings.schemas import MailingCreate
from notification.mailings.services import MailingService, validate_mailing
from notification.preview.service import (
    AudiencePreview,
    planned_audience_of_mailing,
    planned_audience_of_request,
    preview,
)
from notification.texts.service import check_text


class PreviewController(Controller):
    path = "/mailings"
    tags = ["mailings"]
    dependencies = {"mailings": Provide(provide_mailing_service)}

    @post(
        "/preview",
        status_code=HTTP_200_OK,
        summary="Preview a mailing before creating it: its audience, window reach and SMS parts",
        description=(
            "Takes the body of a create and creates nothing: how many clients match, the largest operator "
            "codes and time zones among them, how many are outside the send window at `start_at` and how many "
            "would never be inside it before `end_at`, and the text's encoding and parts; for a personalised text, "
            "how many recipients take 1, 2, 3... parts (over every matching client up to 2,000, else estimated "
            "from a random sample of 2,000 with the 95 % margin of each share) and three rendered examples."
        ),
        responses=problem_responses(400, 401),
    )
    async def preview_new(self, db_session: AsyncSession, data: MailingCreate) -> AudiencePreview:
        validate_mailing(data.text, data.start_at, data.end_at, data.send_window)
        await check_text(db_session, data.text)
        return await preview(db_session, await planned_audience_of_request(db_session, data))

    @get(
        "/{mailing_id:int}/preview",
        summary="Preview an existing mailing against today's client directory",
        responses=problem_responses(400, 401, 404),
    )
    async def preview_existing(self, mailings: MailingService, mailing_id: MailingId) -> AudiencePreview:
        mailing = await mailings.get_mailing(mailing_id)
        session = mailings.repository.session
        return await preview(session, await planned_audience_of_mailing(session, mailing))
