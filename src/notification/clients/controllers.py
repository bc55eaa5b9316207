from __future__ import annotations

from typing import Annotated

import msgspec
import structlog
from advanced_alchemy.filters import LimitOffset
from litestar import Controller, Response, delete, get, patch, post, put
from litestar.di import Provide
from litestar.params import Body, Parameter
from litestar.status_codes import HTTP_201_CREATED

from notification.audit.trail import AuditTrail
from notification.clients.deps import ClientId, provide_client_service
from notification.clients.schemas import (
    OPERATOR_CODE_PATTERN,
    TAG_MAX_LENGTH,
    ClientCreate,
    ClientPatch,
    ClientRead,
)
from notification.clients.services import ClientService
from notification.db import WITHOUT_NUL
from notification.errors import problem_responses
from notification.idempotency.store import IdempotencyKeyHeader, IdempotentCreate
from notification.observability import bind_ids
from notification.pagination import Limit, Offset, Page

MAX_BULK_ROWS = 10_000
# A bulk import logs the ids it created when there are this many or fewer, else their range.
LOGGED_BULK_IDS = 1_000

logger = structlog.get_logger(__name__)


class ClientController(Controller):
    path = "/clients"
    tags = ["clients"]
    dependencies = {"clients": Provide(provide_client_service)}

    @post("/", summary="Add a client", responses=problem_responses(400, 401, 409))
    async def create_client(self, clients: ClientService, audit: AuditTrail, data: ClientCreate) -> ClientRead:
        client = await clients.create_client(data, audit)
        bind_ids(client_id=client.id)
        # The phone goes through the log's masking: only its last 4 digits are written.
        logger.info("client created", phone=client.phone, operator_code=client.operator_code, tag=client.tag)
        return clients.to_schema(client, schema_type=ClientRead)

    @post(
        "/bulk",
        summary="Add many clients at once, all or none",
        description="With an `Idempotency-Key` header, a retried import answers the first answer again.",
        responses=problem_responses(400, 401, 409),
    )
    async def create_clients(
        self,
        clients: ClientService,
        audit: AuditTrail,
        data: Annotated[
            list[ClientCreate],
            Body(
                min_items=1,
                max_items=MAX_BULK_ROWS,
                description="Clients to add, all or none. Each error names its row (`[3].phone`):"
                " a phone that repeats row N of the same import is refused (400),"
                " one that belongs to a client already in the directory is a conflict (409).",
            ),
        ],
        idempotency_key: IdempotencyKeyHeader,
    ) -> Response[list[ClientRead]]:
        # A replay creates nothing, so it records nothing either.
        idempotent = IdempotentCreate(clients.repository.session, "POST /clients/bulk", idempotency_key)
        if (previous := await idempotent.previous_answer(data, list[ClientRead])) is not None:
            logger.info("clients import replayed", idempotency_key=idempotency_key, count=len(previous.content))
            return previous
        rows = await clients.create_clients(data, audit, idempotent)
        created = list(clients.to_schema(rows, schema_type=ClientRead).items)
        ids = [c.id for c in created]
        if len(ids) <= LOGGED_BULK_IDS:
            logger.info("clients created", count=len(ids), client_ids=ids)
        else:
            logger.info("clients created", count=len(ids), first_client_id=min(ids), last_client_id=max(ids))
        return Response(created, status_code=HTTP_201_CREATED)

    @get("/", summary="List clients", responses=problem_responses(400, 401))
    async def list_clients(
        self,
        clients: ClientService,
        limit: Limit,
        offset: Offset,
        operator_code: Annotated[str | None, Parameter(pattern=OPERATOR_CODE_PATTERN)] = None,
        tag: Annotated[str | None, Parameter(max_length=TAG_MAX_LENGTH, pattern=WITHOUT_NUL)] = None,
    ) -> Page[ClientRead]:
        page = LimitOffset(limit, offset)
        rows, total = await clients.list_clients(page, operator_code, tag)
        return Page.of(clients.to_schema(rows, total, filters=[page], schema_type=ClientRead))

    @get("/{client_id:int}", summary="Get a client", responses=problem_responses(400, 401, 404))
    async def get_client(self, clients: ClientService, client_id: ClientId) -> ClientRead:
        return clients.to_schema(await clients.get_client(client_id), schema_type=ClientRead)

    @patch(
        "/{client_id:int}", summary="Change some fields of a client", responses=problem_responses(400, 401, 404, 409)
    )
    async def patch_client(
        self, clients: ClientService, audit: AuditTrail, client_id: ClientId, data: ClientPatch
    ) -> ClientRead:
        client = await clients.patch_client(client_id, data, audit)
        changed = sorted(f for f in data.__struct_fields__ if _given(data, f))
        logger.info("client updated", fields=changed, phone=client.phone)
        return clients.to_schema(client, schema_type=ClientRead)

    @put("/{client_id:int}", summary="Replace a client", responses=problem_responses(400, 401, 404, 409))
    async def replace_client(
        self, clients: ClientService, audit: AuditTrail, client_id: ClientId, data: ClientCreate
    ) -> ClientRead:
        client = await clients.replace_client(client_id, data, audit)
        logger.info("client updated", replaced=True, phone=client.phone)
        return clients.to_schema(client, schema_type=ClientRead)

    @delete(
        "/{client_id:int}",
        summary="Remove a client; its pending messages are cancelled",
        responses=problem_responses(400, 401, 404),
    )
    async def delete_client(self, clients: ClientService, audit: AuditTrail, client_id: ClientId) -> None:
        await clients.delete_client(client_id, audit)
        logger.info("client deleted")


def _given(data: ClientPatch, name: str) -> bool:
    return getattr(data, name, msgspec.UNSET) is not msgspec.UNSET
