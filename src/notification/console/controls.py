"""The operator controls of a mailing in the console: pause, resume, retry, a test send and the
audience preview, and the text's cost measured as it is typed on the form.

Each calls the very service function its API route calls (so the rules, the audit record and the
planning that follows are the API's), with the console's trail naming the signed-in person. Those
that change something ask first on a page of their own, and all of them are for admins only."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import structlog
from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_303_SEE_OTHER, HTTP_400_BAD_REQUEST, HTTP_503_SERVICE_UNAVAILABLE
from procrastinate import App
from sqlalchemy.ext.asyncio import AsyncSession

from notification.audit.trail import AuditTrail
from notification.clients.deps import provide_client_service
from notification.clients.services import ClientService
from notification.config import Settings
from notification.console.errors import is_htmx
from notification.console.forms import (
    FieldErrors,
    attributes_of,
    decode_as,
    field_errors,
    local_datetime,
    local_input,
    mailing_json,
)
from notification.console.identity import operator_timezone, require_admin
from notification.console.templating import page
from notification.errors import Conflict, InvalidInput
from notification.jobs import provide_job_queue
from notification.mailings.deps import MailingId, provide_mailing_service
from notification.mailings.models import Mailing
from notification.mailings.schemas import MailingCreate, MailingRead, RetryRequest
from notification.mailings.services import MailingService, validate_mailing
from notification.mailings.sms import measure
from notification.messages.models import MessageStatus
from notification.observability import bind_ids
from notification.preview.service import planned_audience_of_mailing, planned_audience_of_request, preview
from notification.stats.queries import mailing_counts
from notification.test_sends.schemas import TestSendRequest
from notification.test_sends.services import send_test_message
from notification.texts.service import check_text, least_cost
from notification.texts.templates import is_template

logger = structlog.get_logger(__name__)

RETRYABLE = (MessageStatus.FAILED, MessageStatus.EXPIRED)
# A retry of an ended mailing needs a new end: the form offers one this far ahead.
RETRY_END_OFFERED = dt.timedelta(days=1)


def _read(mailings: MailingService, mailing: Mailing) -> MailingRead:
    return mailings.to_schema(mailing, schema_type=MailingRead)


def _lists(form: Any) -> dict[str, list[str]]:
    return {name: [str(v) for v in form.getall(name) if isinstance(v, str) and v] for name in form}


def _singles(form: Any) -> dict[str, str]:
    return {name: str(value) for name, value in form.items() if isinstance(value, str)}


class MailingControlsController(Controller):
    path = "/mailings"
    guards = [require_admin]
    dependencies = {
        "mailings": Provide(provide_mailing_service),
        "clients": Provide(provide_client_service),
        "job_queue": Provide(provide_job_queue, sync_to_thread=False),
    }

    # -- pause and resume ----------------------------------------------------------------------

    async def _confirm(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        mailings: MailingService,
        mailing_id: int,
        action: str,
    ) -> Template:
        mailing = _read(mailings, await mailings.get_mailing(mailing_id))
        counts = await mailing_counts(db_session, mailing_id)
        return page(request, "mailings/confirm.html", mailing=mailing, counts=counts, action=action)

    @get("/{mailing_id:int}/pause")
    async def pause_page(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, mailings: MailingService, mailing_id: MailingId
    ) -> Template:
        return await self._confirm(request, db_session, mailings, mailing_id, "pause")

    @post("/{mailing_id:int}/pause")
    async def pause(
        self, request: Request[Any, Any, Any], mailings: MailingService, audit: AuditTrail, mailing_id: MailingId
    ) -> Redirect:
        bind_ids(mailing_id=mailing_id)
        mailing = await mailings.pause_mailing(mailing_id, audit)
        logger.info(
            "mailing paused", via="console", paused_at=mailing.paused_at.isoformat() if mailing.paused_at else None
        )
        flash(request, f"Mailing {mailing_id} paused: no new message starts until it is resumed.", "success")
        return Redirect(f"/admin/mailings/{mailing_id}", status_code=HTTP_303_SEE_OTHER)

    @get("/{mailing_id:int}/resume")
    async def resume_page(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, mailings: MailingService, mailing_id: MailingId
    ) -> Template:
        return await self._confirm(request, db_session, mailings, mailing_id, "resume")

    @post("/{mailing_id:int}/resume")
    async def resume(
        self,
        request: Request[Any, Any, Any],
        mailings: MailingService,
        audit: AuditTrail,
        job_queue: App,
        mailing_id: MailingId,
    ) -> Redirect:
        bind_ids(mailing_id=mailing_id)
        _, replan = await mailings.resume_mailing(mailing_id, audit, job_queue)
        logger.info("mailing resumed", via="console", replanned=replan)
        flash(request, f"Mailing {mailing_id} resumed.", "success")
        return Redirect(f"/admin/mailings/{mailing_id}", status_code=HTTP_303_SEE_OTHER)

    # -- retry ---------------------------------------------------------------------------------

    async def _retry_form(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        mailing: MailingRead,
        values: dict[str, Any],
        errors: FieldErrors,
        status_code: int = 200,
    ) -> Template:
        return page(
            request,
            "mailings/retry.html",
            status_code=status_code,
            mailing=mailing,
            counts=await mailing_counts(db_session, mailing.id),
            ended=mailing.end_at <= dt.datetime.now(dt.UTC),
            retryable=[s.value for s in RETRYABLE],
            values=values,
            errors=errors,
        )

    @get("/{mailing_id:int}/retry")
    async def retry_page(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, mailings: MailingService, mailing_id: MailingId
    ) -> Template:
        mailing = _read(mailings, await mailings.get_mailing(mailing_id))
        now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
        ended = mailing.end_at <= now
        values = {
            "statuses": [s.value for s in RETRYABLE],
            "end_at": local_input(now + RETRY_END_OFFERED, operator_timezone(request)) if ended else "",
        }
        return await self._retry_form(request, db_session, mailing, values, {})

    @post("/{mailing_id:int}/retry")
    async def retry(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        mailings: MailingService,
        audit: AuditTrail,
        job_queue: App,
        mailing_id: MailingId,
    ) -> Template | Redirect:
        bind_ids(mailing_id=mailing_id)
        mailing = _read(mailings, await mailings.get_mailing(mailing_id))
        form = await request.form()
        statuses = _lists(form).get("statuses", [])
        end_at = _singles(form).get("end_at", "")
        values = {"statuses": statuses, "end_at": end_at}
        body: dict[str, Any] = {"statuses": statuses}
        if end_at:
            body["end_at"] = local_datetime(end_at, operator_timezone(request))
        try:
            data = decode_as(body, RetryRequest)
            changed, requeued, _ = await mailings.retry_messages(mailing_id, data, audit, job_queue)
        except (msgspec.ValidationError, InvalidInput, Conflict) as exc:
            return await self._retry_form(
                request, db_session, mailing, values, field_errors(exc), status_code=HTTP_400_BAD_REQUEST
            )
        logger.info(
            "mailing messages retried",
            via="console",
            statuses=sorted(data.statuses),
            requeued=requeued,
            end_at=changed.end_at.isoformat(),
        )
        again = f"{requeued:,} message{'' if requeued == 1 else 's'} of mailing {mailing_id} will be sent again."
        flash(request, again, "success")
        return Redirect(f"/admin/mailings/{mailing_id}", status_code=HTTP_303_SEE_OTHER)

    # -- test send -----------------------------------------------------------------------------

    @post("/{mailing_id:int}/test")
    async def test_send(
        self,
        request: Request[Any, Any, Any],
        mailings: MailingService,
        audit: AuditTrail,
        console_settings: Settings,
        mailing_id: MailingId,
    ) -> Template:
        await mailings.get_mailing(mailing_id)
        form = _singles(await request.form())
        phone = form.get("phone", "").strip()
        context: dict[str, Any] = {"phone": phone, "answer": None, "errors": {}, "unavailable": None}
        body: dict[str, Any] = {"phone": phone}
        if client_id := form.get("client_id", "").strip():
            # Digits as the number the API takes; anything else goes as it is, for the struct to refuse.
            body["client_id"] = int(client_id) if client_id.isdigit() and len(client_id) < 20 else client_id
        try:
            data = decode_as(body, TestSendRequest)
            context["answer"] = await send_test_message(mailings, audit, console_settings, mailing_id, data)
        except (msgspec.ValidationError, InvalidInput, Conflict) as exc:
            context["errors"] = field_errors(exc)
            # htmx swaps in a 2xx answer only: the error it shows beside the field comes as one.
            status = HTTP_200_OK if is_htmx(request) else HTTP_400_BAD_REQUEST
            return page(request, "mailings/_test_send.html", status_code=status, **context)
        except HTTPException as exc:
            if exc.status_code != HTTP_503_SERVICE_UNAVAILABLE:
                raise
            context["unavailable"] = exc.detail
        return page(request, "mailings/_test_send.html", **context)

    # -- preview and the text's cost ------------------------------------------------------------

    @get("/{mailing_id:int}/preview")
    async def preview_existing(
        self, request: Request[Any, Any, Any], mailings: MailingService, mailing_id: MailingId
    ) -> Template:
        mailing = await mailings.get_mailing(mailing_id)
        session = mailings.repository.session
        found = await preview(session, await planned_audience_of_mailing(session, mailing))
        return page(request, "mailings/_preview.html", preview=found, errors={})

    @post("/preview")
    async def preview_new(self, request: Request[Any, Any, Any], db_session: AsyncSession) -> Template:
        form = await request.form()
        try:
            data = decode_as(mailing_json(_singles(form), _lists(form), operator_timezone(request)), MailingCreate)
            validate_mailing(data.text, data.start_at, data.end_at, data.send_window)
            await check_text(db_session, data.text)
            audience = await planned_audience_of_request(db_session, data)
        except (msgspec.ValidationError, InvalidInput) as exc:
            return page(request, "mailings/_preview.html", preview=None, errors=field_errors(exc))
        found = await preview(db_session, audience)
        return page(request, "mailings/_preview.html", preview=found, errors={})

    @post("/measure")
    async def measure_text(self, request: Request[Any, Any, Any], clients: ClientService) -> Template:
        form = await request.form()
        lists = _lists(form)
        text = _singles(form).get("text", "").replace("\r\n", "\n")
        try:
            attributes = attributes_of(_singles(form).get("filter_attributes", ""))
        except InvalidInput:
            attributes = {}  # the form says what is wrong with them beside their field when saved
        matching = await clients.count_matching(lists.get("operator_codes", []), lists.get("tags", []), attributes)
        problem = None
        try:
            await check_text(clients.repository.session, text)
        except InvalidInput as exc:
            problem = exc.errors[0][1]
        sms = measure(text) if problem else least_cost(text)
        return page(
            request,
            "mailings/_text_cost.html",
            sms=sms,
            matching=matching,
            empty=not text,
            problem=problem,
            personalised=is_template(text),
        )
