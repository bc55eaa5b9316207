"""Schedules: their rules, and turning their occurrences into mailings.

Occurrences become mailings ahead of their start (``NOTIFICATION_SCHEDULE_LEAD_S``), through the
mailing service's own create path, so each is planned like any mailing. The schedule's row is
locked while its occurrences are created, and ``(schedule_id, occurrence_at)`` is unique: however
many workers look at once, an occurrence is created once.

Missed occurrences (no worker ran across their start): one that started less than its duration
ago still runs, with its original end; older ones are skipped and logged. A pause skips, without
catching up, the occurrences that fall while it lasts. A change of the schedule governs the
occurrences created after it; those created before keep what they were made with.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from zoneinfo import ZoneInfo

import msgspec
import structlog
from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from dateutil.rrule import rrule
from procrastinate import App
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from notification.audiences.service import audience_key, check_audience_choice, is_empty
from notification.audit.models import AuditAction, AuditEntity, Via
from notification.audit.trail import AuditTrail, snapshot
from notification.errors import InvalidInput, NotFound
from notification.mailings.models import Mailing, MailingKind
from notification.mailings.schemas import MailingCreate, MailingFilter, SendWindow
from notification.mailings.services import MailingService, parse_local_time, plan_committed, validate_mailing
from notification.schedules.models import Schedule
from notification.schedules.queries import statements
from notification.schedules.recurrence import next_occurrences, occurrences_between, parse_rule, to_local
from notification.schedules.schemas import (
    Occurrence,
    OccurrenceMailing,
    ScheduleCreate,
    SchedulePatch,
    ScheduleRead,
    ScheduleStats,
    ScheduleStatus,
)
from notification.stats.queries import StatusCounts, counts_of_mailings
from notification.texts.service import check_text
from notification.timezones import is_known_timezone

logger = structlog.get_logger(__name__)

NEXT_SHOWN = 5
OCCURRENCES_SHOWN = 100


def parse_starts(value: str, field_name: str = "starts") -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput.of(field_name, "must be a real local date and time, such as 2026-12-05T10:00") from None


def zone_of(name: str, field_name: str = "timezone") -> ZoneInfo:
    if not is_known_timezone(name):
        raise InvalidInput.of(field_name, f"must be a known IANA time zone ({name!r} is not)")
    return ZoneInfo(name)


@dataclass(frozen=True, slots=True)
class Recurrence:
    rule: rrule
    zone: ZoneInfo
    duration: dt.timedelta

    @classmethod
    def of(cls, rule: str, starts: str, timezone: str, duration_minutes: float) -> Recurrence:
        zone = zone_of(timezone)
        return cls(parse_rule(rule, parse_starts(starts), zone), zone, dt.timedelta(minutes=int(duration_minutes)))

    @classmethod
    def of_schedule(cls, schedule: Schedule) -> Recurrence:
        zone = ZoneInfo(schedule.timezone)
        return cls(parse_rule(schedule.rrule, schedule.starts, zone), zone, schedule.duration)

    def next(self, after: dt.datetime, count: int) -> list[Occurrence]:
        return [
            Occurrence(starts_at=at, ends_at=at + self.duration, local_start=to_local(at, self.zone).isoformat())
            for at in next_occurrences(self.rule, self.zone, after, count)
        ]


def validate_schedule(data: ScheduleCreate) -> Recurrence:
    """The rules of SCHEDULE_RULES that need no database, each with its field."""
    recurrence = Recurrence.of(data.rrule, data.starts, data.timezone, data.duration_minutes)
    # An occurrence is a mailing: the template must make a valid one.
    probe = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    validate_mailing(data.text, probe, probe + recurrence.duration, data.send_window)
    if not data.name.strip():
        raise InvalidInput.of("name", "must not be blank")
    return recurrence


def _columns(data: ScheduleCreate) -> dict[str, Any]:
    window = data.send_window
    return {
        "name": data.name,
        "text": data.text,
        "kind": str(data.kind),
        "rrule": data.rrule.strip(),
        "starts": parse_starts(data.starts),
        "timezone": data.timezone,
        "duration_s": int(data.duration_minutes) * 60,
        "audience_id": audience_key(data.audience_id),
        **data.filter.columns(),
        "send_window_start": parse_local_time(window.start) if window else None,
        "send_window_end": parse_local_time(window.end) if window else None,
    }


def _local_text(value: dt.datetime) -> str:
    return value.isoformat(timespec="minutes") if value.second == 0 else value.isoformat()


def template_of(schedule: Schedule) -> ScheduleCreate:
    window = schedule.send_window
    return ScheduleCreate(
        name=schedule.name,
        text=schedule.text,
        rrule=schedule.rrule,
        starts=_local_text(schedule.starts),
        timezone=schedule.timezone,
        duration_minutes=schedule.duration_s // 60,
        kind=MailingKind(schedule.kind),
        filter=MailingFilter(**schedule.filter),
        audience_id=schedule.audience_id,
        send_window=SendWindow(**window) if window else None,
    )


class ScheduleRepository(SQLAlchemyAsyncRepository[Schedule]):
    model_type = Schedule


class ScheduleService(SQLAlchemyAsyncRepositoryService[Schedule, ScheduleRepository]):
    repository_type = ScheduleRepository
    count_with_window_function = False

    def read(self, schedule: Schedule, now: dt.datetime | None = None) -> ScheduleRead:
        now = now or dt.datetime.now(dt.UTC)
        upcoming = Recurrence.of_schedule(schedule).next(now, NEXT_SHOWN)
        if schedule.paused_at is not None:
            status = ScheduleStatus.PAUSED
        elif upcoming:
            status = ScheduleStatus.ACTIVE
        else:
            status = ScheduleStatus.FINISHED
        template = template_of(schedule)
        return ScheduleRead(
            id=schedule.id,
            name=schedule.name,
            text=schedule.text,
            rrule=schedule.rrule,
            starts=template.starts,
            timezone=schedule.timezone,
            duration_minutes=int(template.duration_minutes),
            kind=template.kind,
            filter=template.filter,
            audience_id=schedule.audience_id,
            send_window=template.send_window,
            status=status,
            paused_at=schedule.paused_at,
            next_occurrences=[o.starts_at for o in upcoming],
            created_at=schedule.created_at,
            updated_at=schedule.updated_at,
        )

    def audited(self, schedule: Schedule) -> dict[str, Any]:
        fields = snapshot(self.read(schedule))
        return {name: value for name, value in fields.items() if name not in {"next_occurrences", "paused_at"}}

    async def get_schedule(self, schedule_id: int, *, for_change: bool = False) -> Schedule:
        schedule = await self.repository.get_one_or_none(
            id=schedule_id, with_for_update=for_change, execution_options={"populate_existing": True}
        )
        if schedule is None:
            raise NotFound("schedule", schedule_id)
        return schedule

    async def list_schedules(self, page: LimitOffset) -> tuple[Sequence[Schedule], int]:
        return await self.list_and_count(page, OrderBy("id", "desc"))

    async def create_schedule(self, data: ScheduleCreate, audit: AuditTrail) -> Schedule:
        validate_schedule(data)
        await check_audience_choice(self.repository.session, data.audience_id, data.filter)
        await check_text(self.repository.session, data.text)
        schedule = await self.create(Schedule(**_columns(data)), auto_commit=False)
        await audit.created(AuditEntity.SCHEDULE, schedule.id, self.audited(schedule))
        await self.repository.session.commit()
        return schedule

    async def patch_schedule(self, schedule_id: int, patch: SchedulePatch, audit: AuditTrail) -> Schedule:
        # Locked: a worker creating this schedule's occurrences finishes before the change, or
        # starts after it with the changed template.
        schedule = await self.get_schedule(schedule_id, for_change=True)
        before = self.audited(schedule)
        changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
        if changes.get("audience_id") is not None and "filter" not in changes:
            changes["filter"] = MailingFilter()
        elif "filter" in changes and not is_empty(changes["filter"]) and "audience_id" not in changes:
            changes["audience_id"] = None
        merged = msgspec.structs.replace(template_of(schedule), **changes)
        validate_schedule(merged)
        await check_audience_choice(self.repository.session, merged.audience_id, merged.filter)
        if merged.text != schedule.text:
            await check_text(self.repository.session, merged.text)
        for name, value in _columns(merged).items():
            setattr(schedule, name, value)
        # The changed rule governs what starts from now on; occurrences already made stay as they are.
        now = dt.datetime.now(dt.UTC)
        if schedule.considered_until is None or schedule.considered_until > now:
            schedule.considered_until = now
        schedule = await self.update(schedule, auto_commit=False)
        await audit.updated(AuditEntity.SCHEDULE, schedule_id, before, self.audited(schedule))
        await self.repository.session.commit()
        return schedule

    async def pause_schedule(self, schedule_id: int, audit: AuditTrail) -> Schedule:
        schedule = await self.get_schedule(schedule_id, for_change=True)
        before = schedule.paused_at
        if before is None:
            schedule.paused_at = dt.datetime.now(dt.UTC)
            schedule = await self.update(schedule, auto_commit=False)
        changes = {"paused_at": (None, schedule.paused_at)} if before is None else {}
        await audit.record(AuditAction.PAUSE, AuditEntity.SCHEDULE, schedule_id, changes)
        await self.repository.session.commit()
        return schedule

    async def resume_schedule(self, schedule_id: int, audit: AuditTrail) -> Schedule:
        schedule = await self.get_schedule(schedule_id, for_change=True)
        before = schedule.paused_at
        if before is not None:
            # What fell during the pause is not caught up: the schedule goes on from now.
            now = dt.datetime.now(dt.UTC)
            schedule.paused_at = None
            if schedule.considered_until is None or schedule.considered_until < now:
                schedule.considered_until = now
            schedule = await self.update(schedule, auto_commit=False)
        changes = {"paused_at": (before, None)} if before is not None else {}
        await audit.record(AuditAction.RESUME, AuditEntity.SCHEDULE, schedule_id, changes)
        await self.repository.session.commit()
        return schedule

    async def delete_schedule(self, schedule_id: int, audit: AuditTrail) -> None:
        """Occurrences not created yet vanish with it; the mailings of those created stay."""
        schedule = await self.get_schedule(schedule_id, for_change=True)
        await audit.deleted(AuditEntity.SCHEDULE, schedule_id, self.audited(schedule))
        await self.delete(schedule_id, auto_commit=True)

    async def occurrence_mailings(self, schedule_id: int, limit: int = OCCURRENCES_SHOWN) -> list[Mailing]:
        rows = await self.repository.session.scalars(
            select(Mailing)
            .where(Mailing.schedule_id == schedule_id)
            .order_by(Mailing.occurrence_at.desc())
            .limit(limit)
        )
        return list(rows)

    async def stats(self, schedule_id: int) -> ScheduleStats:
        await self.get_schedule(schedule_id)
        session = self.repository.session
        rows = await session.execute(statements.text("counts_of_schedule"), {"schedule_id": schedule_id})
        by_status = {status: int(messages) for status, messages in rows}
        occurrences = await self.occurrence_mailings(schedule_id)
        counts = await counts_of_mailings(session, [m.id for m in occurrences])  # type: ignore[arg-type]
        return ScheduleStats(
            schedule_id=schedule_id,
            occurrences=await self._count_occurrences(schedule_id),
            total=sum(by_status.values()),
            by_status=StatusCounts(**by_status),
            items=[
                OccurrenceMailing(
                    mailing_id=m.id,
                    occurrence_at=m.occurrence_at or m.start_at,
                    start_at=m.start_at,
                    end_at=m.end_at,
                    status=m.status,
                    total=counts[m.id].total,
                    by_status=counts[m.id].by_status,
                )
                for m in occurrences
            ],
        )

    async def _count_occurrences(self, schedule_id: int) -> int:
        count = await self.repository.session.scalar(
            select(func.count()).select_from(Mailing).where(Mailing.schedule_id == schedule_id)
        )
        return int(count or 0)


@dataclass(slots=True)
class OccurrenceReport:
    created: list[int] = field(default_factory=list)
    """Mailing ids."""
    skipped: list[tuple[int, dt.datetime]] = field(default_factory=list)
    """(schedule id, occurrence) of those missed by more than their duration."""


async def create_due_occurrences(
    schedules: ScheduleService, mailings: MailingService, job_queue: App, lead: dt.timedelta
) -> OccurrenceReport:
    """Creates the mailings of every occurrence starting before now + lead that is not created yet."""
    session = schedules.repository.session
    report = OccurrenceReport()
    now = dt.datetime.now(dt.UTC)
    horizon = now + lead
    ids = list(await session.scalars(statements.text("schedules_to_look_at"), {"horizon": horizon}))
    await session.commit()
    for schedule_id in ids:
        try:
            made = await _create_occurrences_of(schedules, mailings, schedule_id, horizon, report)
        except NotFound:
            await session.rollback()
            continue
        for mailing in made:
            await plan_committed(job_queue, mailing)
    return report


async def _create_occurrences_of(
    schedules: ScheduleService,
    mailings: MailingService,
    schedule_id: int,
    horizon: dt.datetime,
    report: OccurrenceReport,
) -> list[Mailing]:
    session = schedules.repository.session
    # The lock makes a second worker wait here, then find the occurrences made and the mark moved.
    schedule = await schedules.get_schedule(schedule_id, for_change=True)
    now = dt.datetime.now(dt.UTC)
    if schedule.paused_at is not None or (schedule.considered_until or now) >= horizon:
        await session.commit()
        return []
    recurrence = Recurrence.of_schedule(schedule)
    since = schedule.considered_until or (schedule.created_at - recurrence.duration)
    existing = set(
        await session.scalars(
            select(Mailing.occurrence_at).where(Mailing.schedule_id == schedule_id, Mailing.occurrence_at > since)
        )
    )
    template = template_of(schedule)
    audit = AuditTrail(cast("AsyncSession", session), f"schedule:{schedule_id}", Via.WORKER)
    made: list[Mailing] = []
    for at in occurrences_between(recurrence.rule, recurrence.zone, since, horizon):
        ends = at + recurrence.duration
        if ends <= now:
            report.skipped.append((schedule_id, at))
            logger.warning(
                "schedule occurrence skipped: missed by more than its duration",
                schedule_id=schedule_id,
                occurrence_at=at.isoformat(),
                ended_at=ends.isoformat(),
            )
            continue
        if at in existing:
            continue
        data = MailingCreate(
            text=template.text,
            start_at=at,
            end_at=ends,
            kind=template.kind,
            filter=template.filter,
            send_window=template.send_window,
            audience_id=template.audience_id,
        )
        mailing = await mailings.add_mailing(data, audit, occurrence=(schedule_id, at))
        made.append(mailing)
        logger.info(
            "schedule occurrence created",
            schedule_id=schedule_id,
            mailing_id=mailing.id,
            occurrence_at=at.isoformat(),
            late=at < now,
        )
    schedule.considered_until = horizon
    await session.flush()
    await session.commit()
    report.created.extend(m.id for m in made)
    return made
