from __future__ import annotations

from typing import Annotated, Any

import structlog
from advanced_alchemy.filters import LimitOffset
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import Provide
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK

from notification.audit.trail import AuditTrail
from notification.errors import problem_responses
from notification.pagination import Limit, Offset, Page
from notification.suppressions.deps import SuppressedPhone, provide_suppression_service
from notification.suppressions.models import SuppressionReason
from notification.suppressions.schemas import SuppressionCreate, SuppressionImport, SuppressionRead
from notification.suppressions.service import SuppressionService, read_suppressions_csv

logger = structlog.get_logger(__name__)


class SuppressionController(Controller):
    path = "/suppressions"
    tags = ["suppressions"]
    dependencies = {"suppressions": Provide(provide_suppression_service)}

    @get("/", summary="List the suppression list, newest first", responses=problem_responses(400, 401))
    async def list_suppressions(
        self,
        suppressions: SuppressionService,
        limit: Limit,
        offset: Offset,
        reason: SuppressionReason | None = None,
        phone_prefix: Annotated[
            str | None, Parameter(pattern=r"^[0-9]{1,11}$", description="the first digits of a phone")
        ] = None,
    ) -> Page[SuppressionRead]:
        page = LimitOffset(limit, offset)
        rows, total = await suppressions.list_suppressions(page, reason, phone_prefix)
        return Page.of(suppressions.to_schema(rows, total, filters=[page], schema_type=SuppressionRead))

    @post("/", summary="Put a number on the suppression list", responses=problem_responses(400, 401, 409))
    async def add_suppression(
        self, suppressions: SuppressionService, audit: AuditTrail, data: SuppressionCreate
    ) -> SuppressionRead:
        row = await suppressions.add_suppression(data, audit)
        logger.info("number suppressed", phone=row.phone, reason=row.reason)
        return suppressions.to_schema(row, schema_type=SuppressionRead)

    @get("/{phone:str}", summary="Get a suppressed number", responses=problem_responses(400, 401, 404))
    async def get_suppression(self, suppressions: SuppressionService, phone: SuppressedPhone) -> SuppressionRead:
        return suppressions.to_schema(await suppressions.get_suppression(phone), schema_type=SuppressionRead)

    @delete(
        "/{phone:str}",
        summary="Take a number off the suppression list",
        description="Later plans may reach it again; messages cancelled meanwhile stay cancelled.",
        responses=problem_responses(400, 401, 404),
    )
    async def delete_suppression(
        self, suppressions: SuppressionService, audit: AuditTrail, phone: SuppressedPhone
    ) -> None:
        await suppressions.delete_suppression(phone, audit)
        logger.info("number no longer suppressed", phone=phone)

    @post(
        "/import",
        summary="Import numbers from CSV, all or none",
        description="A `text/csv` body: a header naming `phone` and optionally `reason` (default"
        " operator_request) and `source` (`created_at` and `created_by` of an export are ignored), then one"
        " number a line. Numbers already on the list are left as they were. A body that breaks this"
        " is refused whole with a 400 saying it must be a CSV of suppressions, naming the line (or `file`).",
        status_code=HTTP_200_OK,
        responses=problem_responses(400, 401),
    )
    async def import_suppressions(
        self, request: Request[Any, Any, Any], suppressions: SuppressionService, audit: AuditTrail
    ) -> SuppressionImport:
        rows = read_suppressions_csv(await request.body())
        imported = await suppressions.import_suppressions(rows, audit)
        logger.info("suppressions imported", added=imported.added, already_listed=imported.already_listed)
        return SuppressionImport(added=imported.added, already_listed=imported.already_listed)

    @get(
        "/export",
        summary="Export the suppression list as CSV",
        description="Columns phone, reason, source, created_at, created_by; it imports back as it is.",
        responses=problem_responses(401),
        media_type="text/csv",
    )
    async def export_suppressions(self, suppressions: SuppressionService) -> Response[str]:
        return Response(
            await suppressions.export_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
        )
