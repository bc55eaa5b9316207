"""Mailings in the console: the list, the form, a mailing's own page with its live progress."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
import structlog
from advanced_alchemy.filters import CollectionFilter, LimitOffset
from litestar import Controller, Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.di import Provide
from litestar.params import Parameter
from litestar.plugins.flash import flash
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_400_BAD_REQUEST
from procrastinate import App
from sqlalchemy.ext.asyncio import AsyncSession

from notification.audiences.service import planned_filter
from notification.audit.trail import AuditTrail
from notification.clients.deps import provide_client_service
from notification.clients.services import ClientService
from notification.console.charts import StatusShare, status_shares
from notification.console.forms import (
    FieldErrors,
    attributes_of,
    attributes_text,
    decode_as,
    field_errors,
    local_input,
    mailing_json,
)
from notification.console.identity import operator_timezone, require_admin, require_sign_in
from notification.console.templating import page, refreshing
from notification.errors import InvalidInput
from notification.jobs import provide_job_queue
from notification.mailings.deps import MailingId, provide_mailing_service
from notification.mailings.models import TEXT_MAX_LENGTH, Mailing, MailingStatus
from notification.mailings.schemas import MailingCreate, MailingRead
from notification.mailings.services import MailingService
from notification.messages.deps import provide_message_service
from notification.messages.models import MessageStatus
from notification.messages.services import MessageService
from notification.observability import bind_ids
from notification.stats.queries import (
    DeliveryCounts,
    MailingCounts,
    WindowWaits,
    counts_of_mailings,
    delivery_counts,
    listed_total,
    mailing_counts,
    mailing_error_kinds,
    mailing_provider_counts,
    mailing_timings,
    mailing_window_waits,
)

LIST_PAGE_SIZE = 20
MESSAGES_PAGE_SIZE = 50
PROGRESS_REFRESH_S = 2
LIST_REFRESH_S = 5
# The ids of the fragments htmx refreshes in place; asked for, the page renders only that fragment.
ROWS_TARGET = "mailing-rows"
PROGRESS_TARGET = "progress"

logger = structlog.get_logger(__name__)

PageNumber = Annotated[int, Parameter(query="page", ge=1, le=1_000_000)]


@dataclass(frozen=True, slots=True)
class MailingRow:
    mailing: MailingRead
    counts: MailingCounts
    audience: int
    """Its messages once planned; before that, the clients its filter matches now."""
    shares: list[StatusShare]


def _fields(form: FormMultiDict) -> tuple[dict[str, str], dict[str, list[str]]]:
    single = {name: str(value) for name, value in form.items() if isinstance(value, str)}
    lists = {name: [str(v) for v in form.getall(name) if isinstance(v, str) and v] for name in form}
    return single, lists


async def _rows(db_session: AsyncSession, clients: ClientService, mailings: list[MailingRead]) -> list[MailingRow]:
    counts = await counts_of_mailings(db_session, [m.id for m in mailings])
    # Mailings not planned yet often share a filter ("everyone"): each one is counted once.
    audiences: dict[tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, str], ...]], int] = {}
    rows = []
    for mailing in mailings:
        mailing_count = counts[mailing.id]
        audience = mailing_count.total
        if not audience:
            matching = await planned_filter(db_session, mailing.filter, mailing.audience_id)
            key = (tuple(matching.operator_codes), tuple(matching.tags), tuple(sorted(matching.attributes.items())))
            if key not in audiences:
                audiences[key] = await clients.count_matching(key[0], key[1], dict(key[2]))
            audience = audiences[key]
        rows.append(MailingRow(mailing, mailing_count, audience, status_shares(mailing_count.by_status, audience)))
    return rows


class MailingConsoleController(Controller):
    path = "/mailings"
    guards = [require_sign_in]
    dependencies = {
        "mailings": Provide(provide_mailing_service),
        "clients": Provide(provide_client_service),
        "messages": Provide(provide_message_service),
        "job_queue": Provide(provide_job_queue, sync_to_thread=False),
    }

    # -- the list ------------------------------------------------------------------------------

    @get("/")
    async def list_page(
        self,
        request: HTMXRequest,
        db_session: AsyncSession,
        mailings: MailingService,
        clients: ClientService,
        status: MailingStatus | None = None,
        page_number: PageNumber = 1,
    ) -> Template:
        found, total = await mailings.list_mailings(
            LimitOffset(LIST_PAGE_SIZE, (page_number - 1) * LIST_PAGE_SIZE), status, newest_first=True
        )
        context: dict[str, Any] = {
            "rows": await _rows(db_session, clients, [_read(mailings, m) for m in found]),
            "total": total,
            "status": status,
            "page_number": page_number,
            "pages": max(1, -(-total // LIST_PAGE_SIZE)),
            "refresh_s": LIST_REFRESH_S,
        }
        if refreshing(request, ROWS_TARGET):
            return page(request, "mailings/_rows.html", **context)
        return page(request, "mailings/list.html", by_status=await mailings.count_by_status(), **context)

    # -- the form ------------------------------------------------------------------------------

    async def _form(
        self,
        request: Request[Any, Any, Any],
        clients: ClientService,
        values: dict[str, Any],
        errors: FieldErrors,
        mailing_id: int | None = None,
        status_code: int = 200,
    ) -> Template:
        chosen_codes: list[str] = values.get("operator_codes", [])
        chosen_tags: list[str] = values.get("tags", [])
        return page(
            request,
            "mailings/form.html",
            status_code=status_code,
            values=values,
            errors=errors,
            mailing_id=mailing_id,
            operator_codes=sorted(set(await clients.present_values("operator_code")) | set(chosen_codes)),
            tags=sorted(set(await clients.present_values("tag")) | set(chosen_tags)),
            text_max_length=TEXT_MAX_LENGTH,
        )

    @get("/new", guards=[require_admin])
    async def new_form(self, request: Request[Any, Any, Any], clients: ClientService) -> Template:
        zone = operator_timezone(request)
        # From this minute on: saved as it stands, the mailing starts at once.
        start = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
        values = {
            "text": "",
            "kind": "service",
            "start_at": local_input(start, zone),
            "end_at": local_input(start + dt.timedelta(days=1), zone),
            "operator_codes": [],
            "tags": [],
            "filter_attributes": "",
            "window_start": "",
            "window_end": "",
        }
        return await self._form(request, clients, values, {})

    async def _submitted(self, request: Request[Any, Any, Any]) -> tuple[dict[str, Any], MailingCreate | FieldErrors]:
        """The form as it was filled in, and the mailing it describes or what is wrong with it."""
        single, lists = _fields(await request.form())
        values: dict[str, Any] = {
            **dict.fromkeys(("text", "start_at", "end_at", "window_start", "window_end", "filter_attributes"), ""),
            "kind": "service",
            **single,
            "operator_codes": lists.get("operator_codes", []),
            "tags": lists.get("tags", []),
        }
        try:
            return values, decode_as(mailing_json(single, lists, operator_timezone(request)), MailingCreate)
        except (msgspec.ValidationError, InvalidInput) as exc:
            return values, field_errors(exc)

    @post("/", guards=[require_admin])
    async def create(
        self,
        request: Request[Any, Any, Any],
        mailings: MailingService,
        clients: ClientService,
        audit: AuditTrail,
        job_queue: App,
    ) -> Template | Redirect:
        values, data = await self._submitted(request)
        if not isinstance(data, MailingCreate):
            return await self._form(request, clients, values, data, status_code=HTTP_400_BAD_REQUEST)
        try:
            mailing = await mailings.create_mailing(data, audit, job_queue)
        except InvalidInput as exc:
            return await self._form(request, clients, values, field_errors(exc), status_code=HTTP_400_BAD_REQUEST)
        bind_ids(mailing_id=mailing.id)
        logger.info(
            "mailing created", via="console", start_at=mailing.start_at.isoformat(), end_at=mailing.end_at.isoformat()
        )
        flash(request, f"Mailing {mailing.id} created.", "success")
        return Redirect(f"/admin/mailings/{mailing.id}", status_code=HTTP_303_SEE_OTHER)

    @get("/audience")
    async def audience(
        self,
        request: Request[Any, Any, Any],
        clients: ClientService,
        operator_codes: Annotated[list[str] | None, Parameter(max_items=1000)] = None,
        tags: Annotated[list[str] | None, Parameter(max_items=1000)] = None,
        filter_attributes: Annotated[str | None, Parameter(max_length=20_000)] = None,
    ) -> Template:
        try:
            attributes = attributes_of(filter_attributes or "")
        except InvalidInput:
            attributes = {}  # shown beside their field when the form is saved
        matching = await clients.count_matching(operator_codes or [], tags or [], attributes)
        return page(request, "mailings/_audience.html", matching=matching)

    @get("/{mailing_id:int}/edit", guards=[require_admin])
    async def edit_form(
        self, request: Request[Any, Any, Any], mailings: MailingService, clients: ClientService, mailing_id: MailingId
    ) -> Template:
        mailing = _read(mailings, await mailings.get_mailing(mailing_id))
        zone = operator_timezone(request)
        values = {
            "text": mailing.text,
            "kind": mailing.kind.value,
            "start_at": local_input(mailing.start_at, zone),
            "end_at": local_input(mailing.end_at, zone),
            "operator_codes": mailing.filter.operator_codes,
            "tags": mailing.filter.tags,
            "filter_attributes": attributes_text(mailing.filter.attributes),
            "window_start": mailing.send_window.start if mailing.send_window else "",
            "window_end": mailing.send_window.end if mailing.send_window else "",
        }
        return await self._form(request, clients, values, {}, mailing_id=mailing_id)

    @post("/{mailing_id:int}", guards=[require_admin])
    async def update(
        self,
        request: Request[Any, Any, Any],
        mailings: MailingService,
        clients: ClientService,
        audit: AuditTrail,
        job_queue: App,
        mailing_id: MailingId,
    ) -> Template | Redirect:
        await mailings.get_mailing(mailing_id)
        values, data = await self._submitted(request)
        if not isinstance(data, MailingCreate):
            return await self._form(
                request, clients, values, data, mailing_id=mailing_id, status_code=HTTP_400_BAD_REQUEST
            )
        try:
            _, replan = await mailings.replace_mailing(mailing_id, data, audit, job_queue)
        except InvalidInput as exc:
            return await self._form(
                request, clients, values, field_errors(exc), mailing_id=mailing_id, status_code=HTTP_400_BAD_REQUEST
            )
        logger.info("mailing updated", via="console", replanned=replan, replaced=True)
        flash(request, f"Mailing {mailing_id} saved.", "success")
        return Redirect(f"/admin/mailings/{mailing_id}", status_code=HTTP_303_SEE_OTHER)

    # -- one mailing ---------------------------------------------------------------------------

    async def _progress_context(
        self, db_session: AsyncSession, mailings: MailingService, clients: ClientService, mailing_id: int
    ) -> dict[str, Any]:
        mailing = _read(mailings, await mailings.get_mailing(mailing_id))
        counts = await mailing_counts(db_session, mailing_id)
        matching = await planned_filter(db_session, mailing.filter, mailing.audience_id)
        return {
            "mailing": mailing,
            "counts": counts,
            "shares": status_shares(counts.by_status, counts.total),
            "audience": counts.total
            or await clients.count_matching(matching.operator_codes, matching.tags, matching.attributes),
            "timings": await mailing_timings(db_session, mailing_id),
            # Read from the pending messages themselves: only a mailing with a window has any to read.
            "waits": await mailing_window_waits(db_session, mailing_id) if mailing.send_window else WindowWaits(),
            "error_kinds": sorted((await mailing_error_kinds(db_session, mailing_id)).items()),
            "providers": await mailing_provider_counts(db_session, mailing_id),
            "deliveries": (await delivery_counts(db_session, mailing_id)).get(mailing_id, DeliveryCounts()),
            "live": mailing.status != MailingStatus.FINISHED,
            "refresh_s": PROGRESS_REFRESH_S,
        }

    @get("/{mailing_id:int}")
    async def mailing_page(
        self,
        request: HTMXRequest,
        db_session: AsyncSession,
        mailings: MailingService,
        clients: ClientService,
        messages: MessageService,
        mailing_id: MailingId,
        status: MessageStatus | None = None,
        page_number: PageNumber = 1,
    ) -> Template:
        context = await self._progress_context(db_session, mailings, clients, mailing_id)
        counts: MailingCounts = context["counts"]
        found = await messages.page_of_mailing(
            mailing_id, LimitOffset(MESSAGES_PAGE_SIZE, (page_number - 1) * MESSAGES_PAGE_SIZE), status
        )
        client_ids = [m.client_id for m in found if m.client_id is not None]
        phones = {c.id: c.phone for c in await clients.list(CollectionFilter("id", client_ids))} if client_ids else {}
        purged = context["timings"].messages_purged_at is not None
        listed = await listed_total(messages, counts, status, purged=purged)
        # The list refreshes with the progress, on the status and page the operator is looking at.
        query = {"status": status.value} if status is not None else {}
        query |= {"page": str(page_number)} if page_number > 1 else {}
        return page(
            request,
            "mailings/_live.html" if refreshing(request, PROGRESS_TARGET) else "mailings/page.html",
            live_url=f"/admin/mailings/{mailing_id}" + (f"?{urlencode(query)}" if query else ""),
            **context,
            messages=found,
            phones=phones,
            message_status=status,
            message_statuses=list(MessageStatus),
            listed=listed,
            page_number=page_number,
            pages=max(1, -(-listed // MESSAGES_PAGE_SIZE)),
        )

    # -- deletion ------------------------------------------------------------------------------

    @get("/{mailing_id:int}/delete", guards=[require_admin])
    async def delete_page(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, mailings: MailingService, mailing_id: MailingId
    ) -> Template:
        mailing = _read(mailings, await mailings.get_mailing(mailing_id))
        return page(
            request, "mailings/delete.html", mailing=mailing, counts=await mailing_counts(db_session, mailing_id)
        )

    @post("/{mailing_id:int}/delete", guards=[require_admin])
    async def delete(
        self, request: Request[Any, Any, Any], mailings: MailingService, audit: AuditTrail, mailing_id: MailingId
    ) -> Redirect:
        await mailings.delete_mailing(mailing_id, audit)
        logger.info("mailing deleted", via="console")
        flash(request, f"Mailing {mailing_id} deleted.", "success")
        return Redirect("/admin/mailings", status_code=HTTP_303_SEE_OTHER)


def _read(mailings: MailingService, mailing: Mailing) -> MailingRead:
    return mailings.to_schema(mailing, schema_type=MailingRead)
