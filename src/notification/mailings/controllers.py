from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from litestar import Controller, delete, get, patch, post, put
from litestar.di import Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from notification.mailings.schemas import MailingCreate, MailingPatch, MailingRead
from notification.mailings.services import MailingService, to_read
from notification.pagination import Limit, Offset, Page

MailingId = Annotated[int, Parameter(ge=1, description="Mailing id")]


async def provide_mailing_service(db_session: AsyncSession) -> AsyncIterator[MailingService]:
    async with MailingService.new(session=db_session) as service:
        yield service


class MailingController(Controller):
    path = "/mailings"
    tags = ["mailings"]
    dependencies = {"mailings": Provide(provide_mailing_service)}

    @post("/", summary="Create a mailing; it starts at start_at, or at once when already due")
    async def create_mailing(self, mailings: MailingService, data: MailingCreate) -> MailingRead:
        return to_read(await mailings.create_mailing(data))

    @get("/", summary="List mailings")
    async def list_mailings(self, mailings: MailingService, limit: Limit, offset: Offset) -> Page[MailingRead]:
        rows, total = await mailings.list_mailings(limit, offset)
        return Page(items=[to_read(m) for m in rows], total=total, limit=limit, offset=offset)

    @get("/{mailing_id:int}", summary="Get a mailing")
    async def get_mailing(self, mailings: MailingService, mailing_id: MailingId) -> MailingRead:
        return to_read(await mailings.get_mailing(mailing_id))

    @patch("/{mailing_id:int}", summary="Change some fields of a mailing; it is planned again")
    async def patch_mailing(self, mailings: MailingService, mailing_id: MailingId, data: MailingPatch) -> MailingRead:
        mailing, _ = await mailings.patch_mailing(mailing_id, data)
        return to_read(mailing)

    @put("/{mailing_id:int}", summary="Replace a mailing; it is planned again")
    async def replace_mailing(
        self, mailings: MailingService, mailing_id: MailingId, data: MailingCreate
    ) -> MailingRead:
        mailing, _ = await mailings.replace_mailing(mailing_id, data)
        return to_read(mailing)

    @delete("/{mailing_id:int}", summary="Delete a mailing; pending messages are never sent")
    async def delete_mailing(self, mailings: MailingService, mailing_id: MailingId) -> None:
        await mailings.delete_mailing(mailing_id)
