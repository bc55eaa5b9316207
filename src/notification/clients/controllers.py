from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
import structlog
from litestar import Controller, Response, delete, get, patch, post, put
from litestar.di import Provide
from litestar.params import Body, Parameter
from litestar.status_codes import HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from notification.clients.models import Client
from notification.clients.schemas import (
    OPERATOR_CODE_PATTERN,
    TAG_MAX_LENGTH,
    ClientCreate,
    ClientPatch,
    ClientRead,
)
from notification.clients.services import ClientService
from notification.errors import problem_responses
from notification.idempotency.store import IdempotencyKeyHeader, IdempotentCreate
from notification.observability import bind_ids
from notification.pagination import Limit, Offset, Page

MAX_BULK_ROWS = 10_000
# A bulk import logs the ids it created when there are this many or fewer, else their range.
LOGGED_BULK_IDS = 1_000

logger = structlog.get_logger(__name__)

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

    @post("/", summary="Add a client", responses=problem_responses(400, 409))
    async def create_client(self, clients: ClientService, data: ClientCreate) -> ClientRead:
        client = await clients.create_client(data)
        bind_ids(client_id=client.id)
        # The phone goes through the log's masking: only its last 4 digits are written.
        logger.info("client created", phone=client.phone, operator_code=client.operator_code, tag=client.tag)
        return to_read(client)

    @post(
        "/bulk",
        summary="Add many clients at once, all or none",
        description="With an `Idempotency-Key` header, a retried import answers the first answer again.",
        responses=problem_responses(400, 401, 409),
    )
    async def create_clients(
        self,
        clients: ClientService,
        data: Annotated[list[ClientCreate], Body(min_items=1, max_items=MAX_BULK_ROWS)],
        idempotency_key: IdempotencyKeyHeader,
    ) -> Response[list[ClientRead]]:
        # Committed with the clients by the session's handler when the answer is a success.
        idempotent = IdempotentCreate(clients.repository.session, "POST /clients/bulk", idempotency_key)
        if (previous := await idempotent.previous_answer(data, list[ClientRead])) is not None:
            logger.info("clients import replayed", idempotency_key=idempotency_key, count=len(previous.content))
            return previous
        created = [to_read(c) for c in await clients.create_clients(data)]
        await idempotent.remember(HTTP_201_CREATED, created)
        ids = [c.id for c in created]
        if len(ids) <= LOGGED_BULK_IDS:
            logger.info("clients created", count=len(ids), client_ids=ids)
        else:
            logger.info("clients created", count=len(ids), first_client_id=min(ids), last_client_id=max(ids))
        return Response(created, status_code=HTTP_201_CREATED)

    @get("/", summary="List clients", responses=problem_responses(400))
    async def list_clients(
        self,
        clients: ClientService,
        limit: Limit,
        offset: Offset,
        operator_code: Annotated[str | None, Parameter(pattern=OPERATOR_CODE_PATTERN)] = None,
        tag: Annotated[str | None, Parameter(max_length=TAG_MAX_LENGTH)] = None,
    ) -> Page[ClientRead]:
        rows, total = await clients.list_clients(limit, offset, operator_code, tag)
        return Page(items=[to_read(c) for c in rows], total=total, limit=limit, offset=offset)

    @get("/{client_id:int}", summary="Get a client", responses=problem_responses(400, 404))
    async def get_client(self, clients: ClientService, client_id: ClientId) -> ClientRead:
        return to_read(await clients.get_client(client_id))

    @patch("/{client_id:int}", summary="Change some fields of a client", responses=problem_responses(400, 404, 409))
    async def patch_client(self, clients: ClientService, client_id: ClientId, data: ClientPatch) -> ClientRead:
        client = await clients.patch_client(client_id, data)
        changed = sorted(f for f in data.__struct_fields__ if _given(data, f))
        logger.info("client updated", fields=changed, phone=client.phone)
        return to_read(client)

    @put("/{client_id:int}", summary="Replace a client", responses=problem_responses(400, 404, 409))
    async def replace_client(self, clients: ClientService, client_id: ClientId, data: ClientCreate) -> ClientRead:
        client = await clients.replace_client(client_id, data)
        logger.info("client updated", replaced=True, phone=client.phone)
        return to_read(client)

    @delete(
        "/{client_id:int}",
        summary="Remove a client; its pending messages are cancelled",
        responses=problem_responses(400, 404),
    )
    async def delete_client(self, clients: ClientService, client_id: ClientId) -> None:
        await clients.delete_client(client_id)
        logger.info("client deleted")


def _given(data: ClientPatch, name: str) -> bool:
    return getattr(data, name, msgspec.UNSET) is not msgspec.UNSET
