"""The audit log in the console: who changed what, filtered by person, entity and id; and the
trail that names the signed-in person on every change the console makes."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from advanced_alchemy.filters import LimitOffset
from litestar import Controller, Request, get
from litestar.di import Provide
from litestar.params import Parameter
from litestar.response import Template
from litestar.status_codes import HTTP_400_BAD_REQUEST
from sqlalchemy.ext.asyncio import AsyncSession

from notification.audit.deps import provide_audit_service
from notification.audit.models import AuditEntity, Via
from notification.audit.schemas import AuditEntryRead
from notification.audit.services import AuditService
from notification.audit.trail import AuditTrail
from notification.console.identity import current_identity, require_sign_in
from notification.console.templating import page
from notification.db import BIGINT_MAX

PAGE_SIZE = 50
FILTERS = ("actor", "entity", "entity_id")

PageNumber = Annotated[int, Parameter(query="page", ge=1, le=1_000_000)]


def provide_console_audit_trail(request: Request[Any, Any, Any], db_session: AsyncSession) -> AuditTrail:
    """Every changing page is for admins only: someone is signed in whenever this is asked for."""
    identity = current_identity(request)
    return AuditTrail(db_session, identity.actor if identity else "anonymous", Via.CONSOLE)


def _filters(values: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The search's filters, and what is wrong with those that cannot be one."""
    found: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if values["actor"]:
        found["actor"] = values["actor"]
    if values["entity"]:
        try:
            found["entity"] = AuditEntity(values["entity"])
        except ValueError:
            errors["entity"] = f"one of {', '.join(e.value for e in AuditEntity)}"
    if values["entity_id"]:
        # isdigit() alone holds for "²", which int() does not read.
        entity_id = values["entity_id"]
        if entity_id.isascii() and entity_id.isdigit() and 1 <= int(entity_id) <= BIGINT_MAX:
            found["entity_id"] = int(values["entity_id"])
        else:
            errors["entity_id"] = "an id is a whole number from 1"
    return found, errors


class AuditConsoleController(Controller):
    path = "/audit"
    guards = [require_sign_in]
    dependencies = {"audit_log": Provide(provide_audit_service)}

    @get("/")
    async def audit_page(
        self, request: Request[Any, Any, Any], audit_log: AuditService, page_number: PageNumber = 1
    ) -> Template:
        values = {name: request.query_params.get(name, "").strip() for name in FILTERS}
        filters, errors = _filters(values)
        rows: list[AuditEntryRead] = []
        total = 0
        if not errors:
            found, total = await audit_log.list_entries(
                LimitOffset(PAGE_SIZE, (page_number - 1) * PAGE_SIZE), **filters
            )
            rows = list(audit_log.to_schema(found, total, schema_type=AuditEntryRead).items)
        return page(
            request,
            "audit.html",
            status_code=HTTP_400_BAD_REQUEST if errors else 200,
            values=values,
            errors=errors,
            entities=list(AuditEntity),
            rows=rows,
            total=total,
            page_number=page_number,
            pages=max(1, -(-total // PAGE_SIZE)),
            query=urlencode({name: value for name, value in values.items() if value}),
        )
