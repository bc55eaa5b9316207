"""The suppression list and the inbound messages in the console: list, add, remove, import and export
a CSV file; every change through the service the API uses, audited the same way."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
import structlog
from advanced_alchemy.filters import LimitOffset
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.params import Parameter
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_400_BAD_REQUEST, HTTP_409_CONFLICT

from notification.audit.trail import AuditTrail
from notification.console.forms import FieldErrors, decode_as, field_errors
from notification.console.identity import require_admin, require_sign_in
from notification.console.templating import page
from notification.errors import Conflict, InvalidInput
from notification.inbound.listing import InboundService, provide_inbound_service
from notification.suppressions.deps import SuppressedPhone, provide_suppression_service
from notification.suppressions.models import SuppressionReason
from notification.suppressions.schemas import SuppressionCreate
from notification.suppressions.service import MAX_IMPORT_BYTES, SuppressionService, read_suppressions_csv

logger = structlog.get_logger(__name__)

PAGE_SIZE = 50
PageNumber = Annotated[int, Parameter(query="page", ge=1, le=1_000_000)]
FILTERS = ("reason", "phone_prefix")


def _filters(values: dict[str, str]) -> tuple[dict[str, Any], FieldErrors]:
    filters: dict[str, Any] = {}
    errors: FieldErrors = {}
    if values["reason"]:
        try:
            filters["reason"] = SuppressionReason(values["reason"])
        except ValueError:
            errors["reason"] = f"one of {', '.join(r.value for r in SuppressionReason)}"
    if values["phone_prefix"]:
        if values["phone_prefix"].isdigit() and len(values["phone_prefix"]) <= 11:
            filters["phone_prefix"] = values["phone_prefix"]
        else:
            errors["phone_prefix"] = "the first digits of a phone"
    return filters, errors


class SuppressionConsoleController(Controller):
    path = "/suppressions"
    guards = [require_sign_in]
    dependencies = {"suppressions": Provide(provide_suppression_service)}

    async def _list(
        self,
        request: Request[Any, Any, Any],
        suppressions: SuppressionService,
        page_number: int = 1,
        form: dict[str, str] | None = None,
        form_errors: FieldErrors | None = None,
        import_errors: FieldErrors | None = None,
        status_code: int = 200,
    ) -> Template:
        values = {name: request.query_params.get(name, "").strip() for name in FILTERS}
        filters, errors = _filters(values)
        rows: list[Any] = []
        total = 0
        if not errors:
            found, total = await suppressions.list_suppressions(
                LimitOffset(PAGE_SIZE, (page_number - 1) * PAGE_SIZE),
                filters.get("reason"),
                filters.get("phone_prefix"),
            )
            rows = list(found)
        return page(
            request,
            "suppressions.html",
            status_code=HTTP_400_BAD_REQUEST if errors else status_code,
            values=values,
            errors=errors,
            reasons=[r.value for r in SuppressionReason],
            rows=rows,
            total=total,
            page_number=page_number,
            pages=max(1, -(-total // PAGE_SIZE)),
            query=urlencode({name: value for name, value in values.items() if value}),
            form=form or {"phone": "", "reason": SuppressionReason.OPERATOR_REQUEST.value, "source": ""},
            form_errors=form_errors or {},
            import_errors=import_errors or {},
        )

    @get("/")
    async def list_page(
        self, request: Request[Any, Any, Any], suppressions: SuppressionService, page_number: PageNumber = 1
    ) -> Template:
        return await self._list(request, suppressions, page_number)

    @post("/", guards=[require_admin])
    async def add(
        self, request: Request[Any, Any, Any], suppressions: SuppressionService, audit: AuditTrail
    ) -> Template | Redirect:
        submitted = await request.form()
        form = {name: str(submitted.get(name) or "").strip() for name in ("phone", "reason", "source")}
        try:
            row = await suppressions.add_suppression(decode_as(form, SuppressionCreate), audit)
        except (msgspec.ValidationError, InvalidInput, Conflict) as exc:
            code = HTTP_409_CONFLICT if isinstance(exc, Conflict) else HTTP_400_BAD_REQUEST
            return await self._list(request, suppressions, form=form, form_errors=field_errors(exc), status_code=code)
        logger.info("number suppressed", via="console", phone=row.phone, reason=row.reason)
        flash(request, f"{row.phone} is on the suppression list: pending messages to it were cancelled.", "success")
        return Redirect("/admin/suppressions", status_code=HTTP_303_SEE_OTHER)

    @post("/{phone:str}/delete", guards=[require_admin])
    async def delete(
        self,
        request: Request[Any, Any, Any],
        suppressions: SuppressionService,
        audit: AuditTrail,
        phone: SuppressedPhone,
    ) -> Redirect:
        await suppressions.delete_suppression(phone, audit)
        logger.info("number no longer suppressed", via="console", phone=phone)
        flash(request, f"{phone} is off the suppression list.", "success")
        return Redirect("/admin/suppressions", status_code=HTTP_303_SEE_OTHER)

    @post("/import", guards=[require_admin], request_max_body_size=MAX_IMPORT_BYTES + 2**16)
    async def import_csv(
        self, request: Request[Any, Any, Any], suppressions: SuppressionService, audit: AuditTrail
    ) -> Template | Redirect:
        upload = (await request.form()).get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            errors = {"file": "choose a CSV file to import"}
            return await self._list(request, suppressions, import_errors=errors, status_code=HTTP_400_BAD_REQUEST)
        try:
            imported = await suppressions.import_suppressions(read_suppressions_csv(await upload.read()), audit)
        except InvalidInput as exc:
            errors = dict(exc.errors)
            return await self._list(request, suppressions, import_errors=errors, status_code=HTTP_400_BAD_REQUEST)
        logger.info("suppressions imported", via="console", added=imported.added, already=imported.already_listed)
        flash(
            request,
            f"Imported {upload.filename}: {imported.added:,} numbers added,"
            f" {imported.already_listed:,} already listed.",
            "success",
        )
        return Redirect("/admin/suppressions", status_code=HTTP_303_SEE_OTHER)

    @get("/export")
    async def export_csv(self, suppressions: SuppressionService) -> Response[str]:
        return Response(
            await suppressions.export_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
        )


class InboundConsoleController(Controller):
    path = "/inbound"
    guards = [require_sign_in]
    dependencies = {"inbound": Provide(provide_inbound_service)}

    @get("/")
    async def list_page(
        self, request: Request[Any, Any, Any], inbound: InboundService, page_number: PageNumber = 1
    ) -> Template:
        only = request.query_params.get("show", "")
        stop_word = {"stop": True, "other": False}.get(only)
        rows, total = await inbound.list_inbound(LimitOffset(PAGE_SIZE, (page_number - 1) * PAGE_SIZE), None, stop_word)
        return page(
            request,
            "inbound.html",
            rows=list(rows),
            total=total,
            show=only if stop_word is not None else "",
            page_number=page_number,
            pages=max(1, -(-total // PAGE_SIZE)),
        )
