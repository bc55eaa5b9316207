"""The client directory in the console: search, add, change, remove, import a CSV file."""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
import structlog
from advanced_alchemy.filters import LimitOffset
from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.params import Parameter
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_400_BAD_REQUEST, HTTP_409_CONFLICT

from notification.audit.trail import AuditTrail
from notification.clients.deps import ClientId, provide_client_service
from notification.clients.models import Client
from notification.clients.schemas import ClientCreate, ClientSearch
from notification.clients.services import ClientService, search_key
from notification.console.forms import (
    CONSENT_FIELDS,
    CSV_COLUMNS,
    MAX_CSV_ROWS,
    MAX_UPLOAD_BYTES,
    CsvProblem,
    CsvRejected,
    FieldErrors,
    attributes_text,
    client_json,
    decode_as,
    field_errors,
    local_input,
    read_clients_csv,
)
from notification.console.identity import operator_timezone, require_admin, require_sign_in
from notification.console.templating import page
from notification.errors import Conflict, InvalidInput
from notification.messages.deps import provide_message_service
from notification.messages.models import MessageStatus
from notification.messages.services import MessageService
from notification.observability import bind_ids
from notification.timezones import known_timezones

PAGE_SIZE = 50
# Counting stops here: "more than 10,000" is all a person needs, and it costs no more than a page.
COUNT_CAP = 10_000
SEARCH_FIELDS = ("phone_prefix", "operator_code", "tag", "timezone")

logger = structlog.get_logger(__name__)

# Where a page starts or ends in the search's order: an id, or a phone in a phone search.
Cursor = Annotated[str | None, Parameter(pattern=r"^[0-9]{1,19}$")]


async def _choices(clients: ClientService) -> dict[str, list[str]]:
    return {
        "present_operator_codes": await clients.present_values("operator_code"),
        "present_tags": await clients.present_values("tag"),
        "present_timezones": await clients.present_values("timezone"),
    }


CLIENT_FORM_FIELDS = ("phone", "timezone", "operator_code", "tag", "attributes", *CONSENT_FIELDS)


async def _client_values(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The client form as it was filled in, every field present."""
    form = await request.form()
    return {name: str(form.get(name) or "") for name in CLIENT_FORM_FIELDS}


def _consent_values(client: Client, zone: str) -> dict[str, str]:
    return {
        "consent_given_at": local_input(client.consent_given_at, zone) if client.consent_given_at else "",
        "consent_source": client.consent_source or "",
        "consent_revoked_at": local_input(client.consent_revoked_at, zone) if client.consent_revoked_at else "",
    }


class ClientConsoleController(Controller):
    path = "/clients"
    guards = [require_sign_in]
    dependencies = {"clients": Provide(provide_client_service), "messages": Provide(provide_message_service)}

    @get("/")
    async def search(
        self,
        request: Request[Any, Any, Any],
        clients: ClientService,
        after: Cursor = None,
        before: Cursor = None,
    ) -> Template:
        values = {name: request.query_params.get(name, "").strip() for name in SEARCH_FIELDS}
        errors: FieldErrors = {}
        try:
            search = decode_as({k: v for k, v in values.items() if v}, ClientSearch)
        except msgspec.ValidationError as exc:
            errors = field_errors(exc)
            search = None
        context: dict[str, Any] = {
            "values": values,
            "query": urlencode({name: value for name, value in values.items() if value}),
            "errors": errors,
            "rows": [],
            "by_phone": bool(values["phone_prefix"]),
            "previous_key": None,
            "next_key": None,
            "matching": 0,
            "count_cap": COUNT_CAP,
            **await _choices(clients),
        }
        if search is not None:
            rows, more = await clients.search_clients(search, PAGE_SIZE, after=after, before=before)
            # Read backwards, "more" is about the rows before the page; else about those after it.
            has_previous = bool(rows) and (more if before is not None else after is not None)
            has_next = bool(rows) and (before is not None or more)
            context.update(
                rows=rows,
                previous_key=search_key(search, rows[0]) if has_previous else None,
                next_key=search_key(search, rows[-1]) if has_next else None,
                matching=await clients.count_clients(search, COUNT_CAP + 1),
            )
        status_code = HTTP_400_BAD_REQUEST if errors else 200
        return page(request, "clients/list.html", status_code=status_code, **context)

    # -- one client ----------------------------------------------------------------------------

    async def _form(
        self,
        request: Request[Any, Any, Any],
        values: dict[str, str],
        errors: FieldErrors,
        client_id: int | None = None,
        status_code: int = 200,
    ) -> Template:
        return page(
            request,
            "clients/form.html",
            status_code=status_code,
            values=values,
            errors=errors,
            client_id=client_id,
            timezones=sorted(known_timezones()),
            zone=operator_timezone(request),
        )

    @get("/new", guards=[require_admin])
    async def new_form(self, request: Request[Any, Any, Any]) -> Template:
        return await self._form(request, dict.fromkeys(CLIENT_FORM_FIELDS, ""), {})

    @post("/", guards=[require_admin])
    async def create(
        self, request: Request[Any, Any, Any], clients: ClientService, audit: AuditTrail
    ) -> Template | Redirect:
        values = await _client_values(request)
        try:
            body = client_json(values, operator_timezone(request))
            client = await clients.create_client(decode_as(body, ClientCreate), audit)
        except (msgspec.ValidationError, InvalidInput, Conflict) as exc:
            code = HTTP_409_CONFLICT if isinstance(exc, Conflict) else HTTP_400_BAD_REQUEST
            return await self._form(request, values, field_errors(exc), status_code=code)
        bind_ids(client_id=client.id)
        logger.info("client created", via="console", phone=client.phone, operator_code=client.operator_code)
        flash(request, f"Client {client.phone} added.", "success")
        return Redirect(f"/admin/clients?phone_prefix={client.phone}", status_code=HTTP_303_SEE_OTHER)

    @get("/{client_id:int}/edit", guards=[require_admin])
    async def edit_form(self, request: Request[Any, Any, Any], clients: ClientService, client_id: ClientId) -> Template:
        client = await clients.get_client(client_id)
        values = {
            "phone": client.phone,
            "timezone": client.timezone,
            "operator_code": client.operator_code,
            "tag": client.tag,
            "attributes": attributes_text(client.attributes),
            **_consent_values(client, operator_timezone(request)),
        }
        return await self._form(request, values, {}, client_id=client_id)

    @post("/{client_id:int}", guards=[require_admin])
    async def update(
        self,
        request: Request[Any, Any, Any],
        clients: ClientService,
        audit: AuditTrail,
        client_id: ClientId,
    ) -> Template | Redirect:
        await clients.get_client(client_id)
        values = await _client_values(request)
        try:
            body = client_json(values, operator_timezone(request))
            client = await clients.replace_client(client_id, decode_as(body, ClientCreate), audit)
        except (msgspec.ValidationError, InvalidInput, Conflict) as exc:
            code = HTTP_409_CONFLICT if isinstance(exc, Conflict) else HTTP_400_BAD_REQUEST
            return await self._form(request, values, field_errors(exc), client_id=client_id, status_code=code)
        logger.info("client updated", via="console", replaced=True, phone=client.phone)
        flash(request, f"Client {client.phone} saved.", "success")
        return Redirect(f"/admin/clients?phone_prefix={client.phone}", status_code=HTTP_303_SEE_OTHER)

    @get("/{client_id:int}/delete", guards=[require_admin])
    async def delete_page(
        self, request: Request[Any, Any, Any], clients: ClientService, messages: MessageService, client_id: ClientId
    ) -> Template:
        client = await clients.get_client(client_id)
        _, pending = await messages.list_messages(LimitOffset(1, 0), client_id=client_id, status=MessageStatus.PENDING)
        return page(request, "clients/delete.html", client=client, pending=pending)

    @post("/{client_id:int}/delete", guards=[require_admin])
    async def delete(
        self,
        request: Request[Any, Any, Any],
        clients: ClientService,
        audit: AuditTrail,
        client_id: ClientId,
    ) -> Redirect:
        client = await clients.get_client(client_id)
        phone = client.phone
        await clients.delete_client(client_id, audit)
        logger.info("client deleted", via="console")
        flash(request, f"Client {phone} deleted.", "success")
        return Redirect("/admin/clients", status_code=HTTP_303_SEE_OTHER)

    # -- CSV import ----------------------------------------------------------------------------

    def _import_page(
        self, request: Request[Any, Any, Any], problems: list[CsvProblem], status_code: int = 200
    ) -> Template:
        return page(
            request,
            "clients/import.html",
            status_code=status_code,
            problems=problems,
            columns=CSV_COLUMNS,
            max_rows=MAX_CSV_ROWS,
            max_megabytes=MAX_UPLOAD_BYTES // 2**20,
        )

    @get("/import", guards=[require_admin])
    async def import_page(self, request: Request[Any, Any, Any]) -> Template:
        return self._import_page(request, [])

    @post("/import", guards=[require_admin], request_max_body_size=MAX_UPLOAD_BYTES)
    async def import_csv(
        self, request: Request[Any, Any, Any], clients: ClientService, audit: AuditTrail
    ) -> Template | Redirect:
        upload = (await request.form()).get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return self._import_page(request, [CsvProblem("Choose a CSV file to import.")], HTTP_400_BAD_REQUEST)
        started = time.perf_counter()
        try:
            parsed = read_clients_csv(await upload.read(), MAX_CSV_ROWS)
        except CsvRejected as exc:
            return self._import_page(request, exc.problems, HTTP_400_BAD_REQUEST)
        try:
            created = await clients.create_clients(parsed.clients, audit)
        except (InvalidInput, Conflict) as exc:
            return self._import_page(request, parsed.problems_of(exc), HTTP_400_BAD_REQUEST)
        seconds = time.perf_counter() - started
        logger.info(
            "clients imported",
            via="console",
            count=len(created),
            first_client_id=created[0].id,
            last_client_id=created[-1].id,
            duration_s=round(seconds, 2),
        )
        flash(request, f"Imported {len(created):,} clients from {upload.filename} in {seconds:.1f} s.", "success")
        return Redirect("/admin/clients", status_code=HTTP_303_SEE_OTHER)
