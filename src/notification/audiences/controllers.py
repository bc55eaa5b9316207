from __future__ import annotations

from typing import Annotated

import structlog
from advanced_alchemy.filters import LimitOffset
from litestar import Controller, delete, get, patch, post, put
from litestar.di import Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from notification.audiences.deps import AudienceId, provide_audience_service
from notification.audiences.schemas import (
    AudienceCreate,
    AudiencePatch,
    AudienceRead,
    Facets,
    OperatorCodeNaming,
    OperatorCodeRead,
)
from notification.audiences.service import (
    AudienceService,
    facets,
    name_operator_code,
    operator_code_names,
    unname_operator_code,
)
from notification.audit.trail import AuditTrail
from notification.clients.schemas import OPERATOR_CODE_PATTERN
from notification.errors import problem_responses
from notification.pagination import Limit, Offset, Page

logger = structlog.get_logger(__name__)

CodeParameter = Annotated[
    str, Parameter(pattern=OPERATOR_CODE_PATTERN, min_length=3, max_length=3, description="3 digits")
]


class AudienceController(Controller):
    path = "/audiences"
    tags = ["audiences"]
    dependencies = {"audiences": Provide(provide_audience_service)}

    @post("/", summary="Save a named filter for mailings and schedules", responses=problem_responses(400, 401, 409))
    async def create_audience(
        self, audiences: AudienceService, audit: AuditTrail, data: AudienceCreate
    ) -> AudienceRead:
        audience = await audiences.create_audience(data, audit)
        logger.info("audience created", audience_id=audience.id)
        return audiences.to_schema(audience, schema_type=AudienceRead)

    @get("/", summary="List audiences by name", responses=problem_responses(400, 401))
    async def list_audiences(self, audiences: AudienceService, limit: Limit, offset: Offset) -> Page[AudienceRead]:
        page = LimitOffset(limit, offset)
        rows, total = await audiences.list_audiences(page)
        return Page.of(audiences.to_schema(rows, total, filters=[page], schema_type=AudienceRead))

    @get("/{audience_id:int}", summary="Get an audience", responses=problem_responses(400, 401, 404))
    async def get_audience(self, audiences: AudienceService, audience_id: AudienceId) -> AudienceRead:
        return audiences.to_schema(await audiences.get_audience(audience_id), schema_type=AudienceRead)

    @patch(
        "/{audience_id:int}",
        summary="Change an audience; mailings using it see the change when they are planned",
        responses=problem_responses(400, 401, 404, 409),
    )
    async def patch_audience(
        self, audiences: AudienceService, audit: AuditTrail, audience_id: AudienceId, data: AudiencePatch
    ) -> AudienceRead:
        audience = await audiences.patch_audience(audience_id, data, audit)
        logger.info("audience updated", audience_id=audience_id)
        return audiences.to_schema(audience, schema_type=AudienceRead)

    @put("/{audience_id:int}", summary="Replace an audience", responses=problem_responses(400, 401, 404, 409))
    async def replace_audience(
        self, audiences: AudienceService, audit: AuditTrail, audience_id: AudienceId, data: AudienceCreate
    ) -> AudienceRead:
        audience = await audiences.patch_audience(audience_id, AudiencePatch(name=data.name, filter=data.filter), audit)
        logger.info("audience updated", audience_id=audience_id, replaced=True)
        return audiences.to_schema(audience, schema_type=AudienceRead)

    @delete(
        "/{audience_id:int}",
        summary="Delete an audience no unfinished mailing and no schedule uses",
        description=(
            "A 409 names the mailings not yet finished and the schedules that use it; nothing is deleted then. "
            "Finished mailings keep the filter they were planned with."
        ),
        responses=problem_responses(400, 401, 404, 409),
    )
    async def delete_audience(self, audiences: AudienceService, audit: AuditTrail, audience_id: AudienceId) -> None:
        await audiences.delete_audience(audience_id, audit)
        logger.info("audience deleted", audience_id=audience_id)


class FacetController(Controller):
    path = "/clients/facets"
    tags = ["clients"]

    @get(
        "/",
        summary="Every tag and every operator code with its number of clients",
        description="Read from counters the directory keeps up to date with every change; no scan of the clients.",
        responses=problem_responses(401),
    )
    async def facets(self, db_session: AsyncSession) -> Facets:
        return await facets(db_session)


class OperatorCodeController(Controller):
    path = "/operator-codes"
    tags = ["clients"]

    @get("/", summary="Operator codes that carry a name", responses=problem_responses(401))
    async def list_names(self, db_session: AsyncSession) -> list[OperatorCodeRead]:
        return await operator_code_names(db_session)

    @put("/{code:str}", summary="Name an operator code (916: MTS)", responses=problem_responses(400, 401))
    async def name_code(
        self, db_session: AsyncSession, audit: AuditTrail, code: CodeParameter, data: OperatorCodeNaming
    ) -> OperatorCodeRead:
        named = await name_operator_code(db_session, code, data.name, audit)
        logger.info("operator code named", operator_code=code)
        return named

    @delete("/{code:str}", summary="Remove an operator code's name", responses=problem_responses(400, 401, 404))
    async def unname_code(self, db_session: AsyncSession, audit: AuditTrail, code: CodeParameter) -> None:
        await unname_operator_code(db_session, code, audit)
        logger.info("operator code name removed", operator_code=code)
