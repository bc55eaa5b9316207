from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from litestar import Controller, delete, get, patch, post, put
from litestar.di import Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from notification.clients.models import Client
from notification.clients.schemas import ClientCreate, ClientPatch, ClientRead, OperatorCode, Tag
from notification.clients.services import ClientService
from notification.pagination import Limit, Offset, Page

MAX_BULK_ROWS = 10_000

ClientId = Annotated[int, Parameter(ge=1, description="Client id")]


async def provide_client_service(db_session: AsyncSession) -> AsyncIterator[ClientService]:
    async with ClientService.new(session=db_session) as service:
        yield service


def to_read(client: Client) -> ClientRead:
    return ClientRead(
        id=client.id,
        phone=client.phone,
        operator_code=client.operator_code,
        tag=client.tag,
        timezone=client.timezone,
        created_at=client.created_at,
        updated_at=client.updated_at,
    )


class ClientController(Controller):
    path = "/clients"
    tags = ["clients"]
    dependencies = {"clients": Provide(provide_client_service)}

    @post("/", summary="Add a client")
    async def create_client(self, clients: ClientService, data: ClientCreate) -> ClientRead:
        return to_read(await clients.create_client(data))

    @post("/bulk", summary="Add many clients at once, all or none")
    async def create_clients(
        self,
        clients: ClientService,
        data: Annotated[list[ClientCreate], msgspec.Meta(min_length=1, max_length=MAX_BULK_ROWS)],
    ) -> list[ClientRead]:
        return [to_read(c) for c in await clients.create_clients(data)]

    @get("/", summary="List clients")
    async def list_clients(
        self,
        clients: ClientService,
        limit: Limit,
        offset: Offset,
        operator_code: Annotated[OperatorCode | None, Parameter(query="operator_code")] = None,
        tag: Annotated[Tag | None, Parameter(query="tag")] = None,
    ) -> Page[ClientRead]:
        rows, total = await clients.list_clients(limit, offset, operator_code, tag)
        return Page(items=[to_read(c) for c in rows], total=total, limit=limit, offset=offset)

    @get("/{client_id:int}", summary="Get a client")
    async def get_client(self, clients: ClientService, client_id: ClientId) -> ClientRead:
        return to_read(await clients.get_client(client_id))

    @patch("/{client_id:int}", summary="Change some fields of a client")
    async def patch_client(self, clients: ClientService, client_id: ClientId, data: ClientPatch) -> ClientRead:
        return to_read(await clients.patch_client(client_id, data))

    @put("/{client_id:int}", summary="Replace a client")
    async def replace_client(self, clients: ClientService, client_id: ClientId, data: ClientCreate) -> ClientRead:
        return to_read(await clients.replace_client(client_id, data))

    @delete("/{client_id:int}", summary="Remove a client; its pending messages are cancelled")
    async def delete_client(self, clients: ClientService, client_id: ClientId) -> None:
        await clients.delete_client(client_id)
