from __future__ import annotations

import datetime as dt
from typing import Annotated

import structlog
from advanced_alchemy.filters import LimitOffset
from litestar import Controller, delete, get, patch, post, put
from litestar.di import Provide
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK
from sqlalchemy.ext.asyncio import AsyncSession

from notification.audiences.service import check_audience_choice
from notification.audit.trail import AuditTrail
from notification.errors import problem_responses
from notification.pagination import Limit, Offset, Page
from notification.schedules.deps import ScheduleId, provide_schedule_service
from notification.schedules.models import Schedule
from notification.schedules.schemas import (
    PREVIEW_MAX,
    ScheduleCreate,
    SchedulePatch,
    SchedulePreview,
    ScheduleRead,
    ScheduleStats,
)
from notification.schedules.service import NEXT_SHOWN, ScheduleService, validate_schedule

logger = structlog.get_logger(__name__)

PreviewCount = Annotated[
    int, Parameter(ge=1, le=PREVIEW_MAX, default=NEXT_SHOWN, description="How many occurrences to show")
]


class ScheduleController(Controller):
    path = "/schedules"
    tags = ["schedules"]
    dependencies = {"schedules": Provide(provide_schedule_service)}

    @post(
        "/",
        summary="Create a recurring mailing: each occurrence of its rule becomes a mailing of its own",
        description=(
            "`starts` is the first occurrence as a wall time in `timezone`; the rule repeats it in that zone"
            ' ("every day at 10:00 Moscow time for 7 days": `FREQ=DAILY;COUNT=7`, `2026-12-05T10:00`,'
            " `Europe/Moscow`). A wall time that a spring clock change skips moves forward by the gap"
            " (02:30 becomes 03:30); one that the autumn change repeats is the first of the two."
        ),
        responses=problem_responses(400, 401),
    )
    async def create_schedule(
        self, schedules: ScheduleService, audit: AuditTrail, data: ScheduleCreate
    ) -> ScheduleRead:
        schedule = await schedules.create_schedule(data, audit)
        logger.info("schedule created", schedule_id=schedule.id, rrule=schedule.rrule, timezone=schedule.timezone)
        return schedules.read(schedule)

    @post(
        "/preview",
        status_code=HTTP_200_OK,
        summary="The next occurrences of a schedule before saving it; creates nothing",
        responses=problem_responses(400, 401),
    )
    async def preview_schedule(
        self, db_session: AsyncSession, data: ScheduleCreate, count: PreviewCount = NEXT_SHOWN
    ) -> SchedulePreview:
        recurrence = validate_schedule(data)
        await check_audience_choice(db_session, data.audience_id, data.filter)
        return SchedulePreview(occurrences=recurrence.next(dt.datetime.now(dt.UTC), count))

    @get("/", summary="List schedules, newest first", responses=problem_responses(400, 401))
    async def list_schedules(self, schedules: ScheduleService, limit: Limit, offset: Offset) -> Page[ScheduleRead]:
        rows, total = await schedules.list_schedules(LimitOffset(limit, offset))
        now = dt.datetime.now(dt.UTC)
        return Page(items=[schedules.read(s, now) for s in rows], total=total, limit=limit, offset=offset)

    @get(
        "/{schedule_id:int}",
        summary="Get a schedule and its next occurrences",
        responses=problem_responses(400, 401, 404),
    )
    async def get_schedule(self, schedules: ScheduleService, schedule_id: ScheduleId) -> ScheduleRead:
        return schedules.read(await schedules.get_schedule(schedule_id))

    @get(
        "/{schedule_id:int}/stats",
        summary="A schedule's statistics: the sum of its occurrences' counts, and each occurrence's",
        responses=problem_responses(400, 401, 404),
    )
    async def schedule_stats(self, schedules: ScheduleService, schedule_id: ScheduleId) -> ScheduleStats:
        return await schedules.stats(schedule_id)

    @patch(
        "/{schedule_id:int}",
        summary="Change a schedule; occurrences already created keep what they were made with",
        responses=problem_responses(400, 401, 404),
    )
    async def patch_schedule(
        self, schedules: ScheduleService, audit: AuditTrail, schedule_id: ScheduleId, data: SchedulePatch
    ) -> ScheduleRead:
        schedule = await schedules.patch_schedule(schedule_id, data, audit)
        logger.info("schedule updated", schedule_id=schedule_id)
        return schedules.read(schedule)

    @put("/{schedule_id:int}", summary="Replace a schedule", responses=problem_responses(400, 401, 404))
    async def replace_schedule(
        self, schedules: ScheduleService, audit: AuditTrail, schedule_id: ScheduleId, data: ScheduleCreate
    ) -> ScheduleRead:
        patch_ = SchedulePatch(**{name: getattr(data, name) for name in data.__struct_fields__})
        schedule = await schedules.patch_schedule(schedule_id, patch_, audit)
        logger.info("schedule updated", schedule_id=schedule_id, replaced=True)
        return schedules.read(schedule)

    @post(
        "/{schedule_id:int}/pause",
        status_code=HTTP_200_OK,
        summary="Pause a schedule: no occurrence is created while paused, none is caught up after",
        description="Occurrences already created are mailings of their own: pause those one by one if needed.",
        responses=problem_responses(400, 401, 404),
    )
    async def pause_schedule(
        self, schedules: ScheduleService, audit: AuditTrail, schedule_id: ScheduleId
    ) -> ScheduleRead:
        return _logged(schedules, await schedules.pause_schedule(schedule_id, audit), "schedule paused")

    @post(
        "/{schedule_id:int}/resume",
        status_code=HTTP_200_OK,
        summary="Resume a paused schedule from now on",
        responses=problem_responses(400, 401, 404),
    )
    async def resume_schedule(
        self, schedules: ScheduleService, audit: AuditTrail, schedule_id: ScheduleId
    ) -> ScheduleRead:
        return _logged(schedules, await schedules.resume_schedule(schedule_id, audit), "schedule resumed")

    @delete(
        "/{schedule_id:int}",
        summary="Delete a schedule; its occurrences not yet created vanish, the mailings of those created stay",
        responses=problem_responses(400, 401, 404),
    )
    async def delete_schedule(self, schedules: ScheduleService, audit: AuditTrail, schedule_id: ScheduleId) -> None:
        await schedules.delete_schedule(schedule_id, audit)
        logger.info("schedule deleted", schedule_id=schedule_id)


def _logged(schedules: ScheduleService, schedule: Schedule, event: str) -> ScheduleRead:
    """The schedule as the API shows it, once its change is logged."""
    logger.info(event, schedule_id=schedule.id)
    return schedules.read(schedule)
