"""Schedules in the console: the list, the form with its next occurrences, and a schedule's page
with each occurrence's progress and the total over all of them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import structlog
from advanced_alchemy.filters import LimitOffset
from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_400_BAD_REQUEST
from sqlalchemy.ext.asyncio import AsyncSession

from notification.audiences.console import form_values, picker_choices
from notification.audiences.deps import provide_audience_service
from notification.audiences.service import AudienceService, check_audience_choice, facets
from notification.audit.trail import AuditTrail
from notification.console.charts import status_shares
from notification.console.forms import FieldErrors, attributes_of, attributes_text, decode_as, field_errors
from notification.console.identity import operator_timezone, require_admin, require_sign_in
from notification.console.templating import page
from notification.errors import InvalidInput
from notification.schedules.deps import ScheduleId, provide_schedule_service
from notification.schedules.models import Schedule
from notification.schedules.schemas import Occurrence, ScheduleCreate, SchedulePatch
from notification.schedules.service import NEXT_SHOWN, Recurrence, ScheduleService, template_of, validate_schedule
from notification.stats.queries import counts_of_mailings

logger = structlog.get_logger(__name__)

_FIELDS = (
    "name",
    "text",
    "kind",
    "rrule",
    "starts",
    "timezone",
    "duration_minutes",
    "audience_id",
    "window_start",
    "window_end",
    "filter_attributes",
)


def _values(single: dict[str, str], lists: dict[str, list[str]]) -> dict[str, Any]:
    return {
        **dict.fromkeys(_FIELDS, ""),
        **{k: v for k, v in single.items() if k in _FIELDS},
        "operator_codes": lists.get("operator_codes", []),
        "tags": lists.get("tags", []),
    }


def schedule_json(values: dict[str, Any]) -> dict[str, Any]:
    """The schedule form as the JSON of ``POST /api/v1/schedules``."""
    # Not a number: passed on as it is, for the struct to refuse with its own message.
    duration: Any = values["duration_minutes"]
    if duration.isdigit():
        duration = int(duration)
    body: dict[str, Any] = {
        "name": values["name"],
        "text": values["text"].replace("\r\n", "\n"),
        # As the mailing form: the kind it shows, service when a post leaves it out.
        "kind": values["kind"] or "service",
        "rrule": values["rrule"],
        "starts": values["starts"],
        "timezone": values["timezone"],
        "duration_minutes": duration,
        "filter": {
            "operator_codes": values["operator_codes"],
            "tags": values["tags"],
            "attributes": attributes_of(values["filter_attributes"], "filter.attributes"),
        },
        "send_window": None,
    }
    if values["audience_id"]:
        body["audience_id"] = int(values["audience_id"]) if values["audience_id"].isdigit() else values["audience_id"]
    if values["window_start"] or values["window_end"]:
        body["send_window"] = {"start": values["window_start"], "end": values["window_end"]}
    return body


class ScheduleConsoleController(Controller):
    path = "/schedules"
    guards = [require_sign_in]
    dependencies = {
        "schedules": Provide(provide_schedule_service),
        "audiences": Provide(provide_audience_service),
    }

    @get("/")
    async def list_page(self, request: Request[Any, Any, Any], schedules: ScheduleService) -> Template:
        rows, _ = await schedules.list_schedules(_all())
        now = dt.datetime.now(dt.UTC)
        return page(request, "schedules/list.html", schedules=[schedules.read(s, now) for s in rows])

    async def _form(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        audiences: AudienceService,
        values: dict[str, Any],
        errors: FieldErrors,
        schedule_id: int | None = None,
        status_code: int = 200,
    ) -> Template:
        return page(
            request,
            "schedules/form.html",
            status_code=status_code,
            values=values,
            errors=errors,
            schedule_id=schedule_id,
            audiences=await audiences.all_audiences(),
            **picker_choices(await facets(db_session), values["operator_codes"], values["tags"]),
        )

    @get("/new", guards=[require_admin])
    async def new_form(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, audiences: AudienceService
    ) -> Template:
        tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date()
        values = _values(
            {
                "rrule": "FREQ=DAILY;COUNT=7",
                "starts": f"{tomorrow.isoformat()}T10:00",
                "timezone": operator_timezone(request),
                "duration_minutes": "120",
            },
            {},
        )
        return await self._form(request, db_session, audiences, values, {})

    @get("/preview")
    async def preview(self, request: Request[Any, Any, Any]) -> Template:
        """The next occurrences of the form as it stands; creates nothing."""
        query = request.query_params
        values = _values({k: str(v) for k, v in query.items()}, {})
        values["text"] = values["text"] or "-"
        values["name"] = values["name"] or "-"
        try:
            recurrence = validate_schedule(decode_as(schedule_json(values), ScheduleCreate))
        except (msgspec.ValidationError, InvalidInput) as exc:
            return page(request, "schedules/_next.html", occurrences=[], problem=field_errors(exc))
        occurrences = recurrence.next(dt.datetime.now(dt.UTC), NEXT_SHOWN)
        return page(request, "schedules/_next.html", occurrences=occurrences, problem={}, zone=values["timezone"])

    async def _save(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        schedules: ScheduleService,
        audiences: AudienceService,
        audit: AuditTrail,
        schedule_id: int | None,
    ) -> Template | Redirect:
        single, lists = await form_values(request)
        values = _values(single, lists)
        try:
            body = schedule_json(values)
            if values["audience_id"]:
                body["filter"] = {"operator_codes": [], "tags": []}
            data = decode_as(body, ScheduleCreate)
            await check_audience_choice(db_session, data.audience_id, data.filter)
            if schedule_id is None:
                schedule = await schedules.create_schedule(data, audit)
            else:
                patch = SchedulePatch(**{name: getattr(data, name) for name in data.__struct_fields__})
                schedule = await schedules.patch_schedule(schedule_id, patch, audit)
        except (msgspec.ValidationError, InvalidInput) as exc:
            await db_session.rollback()
            return await self._form(
                request, db_session, audiences, values, field_errors(exc), schedule_id, status_code=HTTP_400_BAD_REQUEST
            )
        logger.info("schedule saved", via="console", schedule_id=schedule.id)
        return _done(request, f"Schedule {schedule.id} saved.", f"/admin/schedules/{schedule.id}")

    @post("/", guards=[require_admin])
    async def create(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        schedules: ScheduleService,
        audiences: AudienceService,
        audit: AuditTrail,
    ) -> Template | Redirect:
        return await self._save(request, db_session, schedules, audiences, audit, None)

    @get("/{schedule_id:int}/edit", guards=[require_admin])
    async def edit_form(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        schedules: ScheduleService,
        audiences: AudienceService,
        schedule_id: ScheduleId,
    ) -> Template:
        template = template_of(await schedules.get_schedule(schedule_id))
        window = template.send_window
        values = _values(
            {
                "name": template.name,
                "text": template.text,
                "kind": template.kind.value,
                "rrule": template.rrule,
                "starts": template.starts,
                "timezone": template.timezone,
                "duration_minutes": str(template.duration_minutes),
                "audience_id": str(template.audience_id or ""),
                "window_start": window.start if window else "",
                "window_end": window.end if window else "",
                "filter_attributes": attributes_text(template.filter.attributes),
            },
            {"operator_codes": template.filter.operator_codes, "tags": template.filter.tags},
        )
        return await self._form(request, db_session, audiences, values, {}, schedule_id)

    @post("/{schedule_id:int}", guards=[require_admin])
    async def update(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        schedules: ScheduleService,
        audiences: AudienceService,
        audit: AuditTrail,
        schedule_id: ScheduleId,
    ) -> Template | Redirect:
        await schedules.get_schedule(schedule_id)
        return await self._save(request, db_session, schedules, audiences, audit, schedule_id)

    @get("/{schedule_id:int}")
    async def schedule_page(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        schedules: ScheduleService,
        schedule_id: ScheduleId,
    ) -> Template:
        schedule = await schedules.get_schedule(schedule_id)
        stats = await schedules.stats(schedule_id)
        occurrences = await schedules.occurrence_mailings(schedule_id)
        counts = await counts_of_mailings(db_session, [m.id for m in occurrences])
        rows = [(m, counts[m.id], status_shares(counts[m.id].by_status, counts[m.id].total)) for m in occurrences]
        return page(
            request,
            "schedules/page.html",
            schedule=schedules.read(schedule),
            stats=stats,
            rows=rows,
            total_shares=status_shares(stats.by_status, stats.total),
            upcoming=_upcoming(schedule),
        )

    @post("/{schedule_id:int}/pause", guards=[require_admin])
    async def pause(
        self, request: Request[Any, Any, Any], schedules: ScheduleService, audit: AuditTrail, schedule_id: ScheduleId
    ) -> Redirect:
        await schedules.pause_schedule(schedule_id, audit)
        return _done(request, f"Schedule {schedule_id} paused.", f"/admin/schedules/{schedule_id}")

    @post("/{schedule_id:int}/resume", guards=[require_admin])
    async def resume(
        self, request: Request[Any, Any, Any], schedules: ScheduleService, audit: AuditTrail, schedule_id: ScheduleId
    ) -> Redirect:
        await schedules.resume_schedule(schedule_id, audit)
        return _done(request, f"Schedule {schedule_id} resumed.", f"/admin/schedules/{schedule_id}")

    @post("/{schedule_id:int}/delete", guards=[require_admin])
    async def delete(
        self, request: Request[Any, Any, Any], schedules: ScheduleService, audit: AuditTrail, schedule_id: ScheduleId
    ) -> Redirect:
        await schedules.delete_schedule(schedule_id, audit)
        deleted = f"Schedule {schedule_id} deleted; the mailings of its occurrences stay."
        return _done(request, deleted, "/admin/schedules")


def _done(request: Request[Any, Any, Any], message: str, next_page: str) -> Redirect:
    """Back to a page after a change, with the message saying what was done."""
    flash(request, message, "success")
    return Redirect(next_page, status_code=HTTP_303_SEE_OTHER)


# The console lists the newest schedules; a service with more than this uses the API's pages.
LISTED = 200


def _all() -> LimitOffset:
    return LimitOffset(LISTED, 0)


def _upcoming(schedule: Schedule) -> list[Occurrence]:
    return Recurrence.of_schedule(schedule).next(dt.datetime.now(dt.UTC), NEXT_SHOWN)
