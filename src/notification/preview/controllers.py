from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK
from sqlalchemy.ext.asyncio import AsyncSession

from notification.audiences.service import check_audience_choice, with_saved_audience
from notification.errors import problem_responses
from notification.mailings.controllers import MailingId
from notification.mailings.deps import provide_mailing_service
from notification.mailings.models import Mailing
from notification.mailings.schemas import MailingCreate
from notification.mailings.services import MailingService, parse_local_time, validate_mailing
from notification.preview.service import Audience, AudiencePreview, preview


def audience_of_request(data: MailingCreate) -> Audience:
    window = None
    if data.send_window is not None:
        window = (parse_local_time(data.send_window.start), parse_local_time(data.send_window.end))
    return Audience(
        data.text, data.start_at, data.end_at, list(data.filter.operator_codes), list(data.filter.tags), window
    )


def audience_of_mailing(mailing: Mailing) -> Audience:
    window = None
    if mailing.send_window_start is not None and mailing.send_window_end is not None:
        window = (mailing.send_window_start, mailing.send_window_end)
    return Audience(
        mailing.text,
        mailing.start_at,
        mailing.end_at,
        list(mailing.filter_operator_codes),
        list(mailing.filter_tags),
        window,
    )


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
            "would never be inside it before `end_at`, and the text's encoding and parts."
        ),
        responses=problem_responses(400, 401),
    )
    async def preview_new(self, db_session: AsyncSession, data: MailingCreate) -> AudiencePreview:
        validate_mailing(data.text, data.start_at, data.end_at, data.send_window)
        await check_audience_choice(db_session, data.audience_id, data.filter)
        return await preview(
            db_session, await with_saved_audience(db_session, audience_of_request(data), data.audience_id)
        )

    @get(
        "/{mailing_id:int}/preview",
        summary="Preview an existing mailing against today's client directory",
        responses=problem_responses(400, 401, 404),
    )
    async def preview_existing(self, mailings: MailingService, mailing_id: MailingId) -> AudiencePreview:
        mailing = await mailings.get_mailing(mailing_id)
        session = mailings.repository.session
        return await preview(
            session, await with_saved_audience(session, audience_of_mailing(mailing), mailing.audience_id)
        )
