from __future__ import annotations

from typing import Annotated

from advanced_alchemy.filters import LimitOffset
from litestar import Controller, get
from litestar.di import Provide
from litestar.params import Parameter

from notification.audit.deps import provide_audit_service
from notification.audit.models import AuditEntity
from notification.audit.schemas import AuditEntryRead
from notification.audit.services import AuditService
from notification.db import WITHOUT_NUL
from notification.errors import problem_responses
from notification.pagination import Limit, Offset, Page, bigint_parameter

ACTOR_MAX_LENGTH = 320


class AuditController(Controller):
    path = "/audit"
    tags = ["audit"]
    dependencies = {"audit_log": Provide(provide_audit_service)}

    @get(
        "/",
        summary="Who changed what, when: every change through the API or the console, and the console's sign-ins",
        responses=problem_responses(400, 401),
    )
    async def list_audit_entries(
        self,
        audit_log: AuditService,
        limit: Limit,
        offset: Offset,
        actor: Annotated[
            str | None,
            Parameter(
                max_length=ACTOR_MAX_LENGTH,
                pattern=WITHOUT_NUL,
                description="An email, or `api-token:` and 4 hex digits",
            ),
        ] = None,
        entity: Annotated[AuditEntity | None, Parameter(description="What changed")] = None,
        entity_id: Annotated[int | None, bigint_parameter("The client's or mailing's id", default=None)] = None,
    ) -> Page[AuditEntryRead]:
        page = LimitOffset(limit, offset)
        rows, total = await audit_log.list_entries(page, actor, entity, entity_id)
        return Page.of(audit_log.to_schema(rows, total, filters=[page], schema_type=AuditEntryRead))
