"""Audiences and operator code names in the console: admins change them, viewers read them."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import structlog
from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_400_BAD_REQUEST, HTTP_409_CONFLICT
from sqlalchemy.ext.asyncio import AsyncSession

from notification.audiences.deps import AudienceId, provide_audience_service
from notification.audiences.schemas import AudienceCreate, AudiencePatch, AudienceRead, Facets
from notification.audiences.service import AudienceService, facets, name_operator_code, unname_operator_code
from notification.audit.trail import AuditTrail
from notification.clients.deps import provide_client_service
from notification.clients.schemas import OPERATOR_CODE_PATTERN
from notification.clients.services import ClientService
from notification.console.forms import FieldErrors, attributes_of, attributes_text, decode_as, field_errors
from notification.console.identity import require_admin, require_sign_in
from notification.console.templating import page
from notification.errors import Conflict, InvalidInput, NotFound

logger = structlog.get_logger(__name__)


async def form_values(request: Request[Any, Any, Any]) -> tuple[dict[str, str], dict[str, list[str]]]:
    form = await request.form()
    single = {name: str(value) for name, value in form.items() if isinstance(value, str)}
    lists = {name: [str(v) for v in form.getall(name) if isinstance(v, str) and v] for name in form}
    return single, lists


def picker_choices(found: Facets, chosen_codes: list[str], chosen_tags: list[str]) -> dict[str, Any]:
    """The pickers' values: every code and tag of the directory with its clients, and those chosen."""
    codes = {f.code: (f.name, f.clients) for f in found.operator_codes}
    tags = {f.tag: f.clients for f in found.tags}
    for code in chosen_codes:
        codes.setdefault(code, (None, 0))
    for tag in chosen_tags:
        tags.setdefault(tag, 0)
    return {"code_choices": sorted(codes.items()), "tag_choices": sorted(tags.items())}


class AudienceConsoleController(Controller):
    path = "/audiences"
    guards = [require_sign_in]
    dependencies = {
        "audiences": Provide(provide_audience_service),
        "clients": Provide(provide_client_service),
    }

    @get("/")
    async def list_page(
        self, request: Request[Any, Any, Any], audiences: AudienceService, clients: ClientService
    ) -> Template:
        rows = []
        for audience in await audiences.all_audiences():
            matching = await clients.count_matching(
                audience.filter_operator_codes, audience.filter_tags, audience.filter_attributes
            )
            rows.append((audiences.to_schema(audience, schema_type=AudienceRead), matching))
        return page(request, "audiences/list.html", rows=rows)

    async def _form(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        values: dict[str, Any],
        errors: FieldErrors,
        audience_id: int | None = None,
        status_code: int = 200,
    ) -> Template:
        return page(
            request,
            "audiences/form.html",
            status_code=status_code,
            values=values,
            errors=errors,
            audience_id=audience_id,
            **picker_choices(await facets(db_session), values["operator_codes"], values["tags"]),
        )

    @get("/new", guards=[require_admin])
    async def new_form(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        empty = {"name": "", "operator_codes": [], "tags": [], "filter_attributes": ""}
        return await self._form(request, db_session, empty, {})

    @get("/{audience_id:int}/edit", guards=[require_admin])
    async def edit_form(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        audiences: AudienceService,
        audience_id: AudienceId,
    ) -> Template:
        audience = await audiences.get_audience(audience_id)
        values = {
            "name": audience.name,
            "operator_codes": audience.filter_operator_codes,
            "tags": audience.filter_tags,
            "filter_attributes": attributes_text(audience.filter_attributes),
        }
        return await self._form(request, db_session, values, {}, audience_id)

    async def _save(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        audiences: AudienceService,
        audit: AuditTrail,
        audience_id: int | None,
    ) -> Template | Redirect:
        single, lists = await form_values(request)
        values: dict[str, Any] = {
            "name": single.get("name", ""),
            "operator_codes": lists.get("operator_codes", []),
            "tags": lists.get("tags", []),
            "filter_attributes": single.get("filter_attributes", ""),
        }
        try:
            attributes = attributes_of(values["filter_attributes"], "filter.attributes")
            body = {
                "name": values["name"],
                "filter": {
                    "operator_codes": values["operator_codes"],
                    "tags": values["tags"],
                    "attributes": attributes,
                },
            }
            data = decode_as(body, AudienceCreate)
            if audience_id is None:
                audience = await audiences.create_audience(data, audit)
            else:
                audience = await audiences.patch_audience(audience_id, AudiencePatch(data.name, data.filter), audit)
        except (msgspec.ValidationError, InvalidInput, Conflict) as exc:
            await db_session.rollback()
            return await self._form(
                request, db_session, values, field_errors(exc), audience_id, status_code=HTTP_400_BAD_REQUEST
            )
        logger.info("audience saved", via="console", audience_id=audience.id)
        flash(request, f"Audience {audience.name} saved.", "success")
        return Redirect("/admin/audiences", status_code=HTTP_303_SEE_OTHER)

    @post("/", guards=[require_admin])
    async def create(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, audiences: AudienceService, audit: AuditTrail
    ) -> Template | Redirect:
        return await self._save(request, db_session, audiences, audit, None)

    @post("/{audience_id:int}", guards=[require_admin])
    async def update(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        audiences: AudienceService,
        audit: AuditTrail,
        audience_id: AudienceId,
    ) -> Template | Redirect:
        await audiences.get_audience(audience_id)
        return await self._save(request, db_session, audiences, audit, audience_id)

    @get("/{audience_id:int}/delete", guards=[require_admin])
    async def delete_page(
        self, request: Request[Any, Any, Any], audiences: AudienceService, audience_id: AudienceId
    ) -> Template:
        audience = audiences.to_schema(await audiences.get_audience(audience_id), schema_type=AudienceRead)
        return page(request, "audiences/delete.html", audience=audience, problem=None)

    @post("/{audience_id:int}/delete", guards=[require_admin])
    async def delete(
        self, request: Request[Any, Any, Any], audiences: AudienceService, audit: AuditTrail, audience_id: AudienceId
    ) -> Template | Redirect:
        audience = audiences.to_schema(await audiences.get_audience(audience_id), schema_type=AudienceRead)
        try:
            await audiences.delete_audience(audience_id, audit)
        except Conflict as exc:
            return page(
                request, "audiences/delete.html", status_code=HTTP_409_CONFLICT, audience=audience, problem=exc.message
            )
        logger.info("audience deleted", via="console", audience_id=audience_id)
        flash(request, f"Audience {audience.name} deleted.", "success")
        return Redirect("/admin/audiences", status_code=HTTP_303_SEE_OTHER)


class OperatorCodeConsoleController(Controller):
    path = "/operator-codes"
    guards = [require_sign_in]

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        return page(request, "audiences/operator_codes.html", facets=await facets(db_session), errors={})

    @post("/", guards=[require_admin])
    async def name(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, audit: AuditTrail
    ) -> Template | Redirect:
        single, _ = await form_values(request)
        code, name = single.get("code", ""), single.get("name", "").strip()
        if not re.fullmatch(OPERATOR_CODE_PATTERN.strip("^$"), code):
            return page(
                request,
                "audiences/operator_codes.html",
                status_code=HTTP_400_BAD_REQUEST,
                facets=await facets(db_session),
                errors={"code": "must be 3 digits"},
            )
        try:
            if name:
                await name_operator_code(db_session, code, name, audit)
            else:
                await unname_operator_code(db_session, code, audit)
        except InvalidInput as exc:
            return page(
                request,
                "audiences/operator_codes.html",
                status_code=HTTP_400_BAD_REQUEST,
                facets=await facets(db_session),
                errors=field_errors(exc),
            )
        except NotFound:
            pass
        flash(request, f"Operator code {code} saved.", "success")
        return Redirect("/admin/operator-codes", status_code=HTTP_303_SEE_OTHER)
