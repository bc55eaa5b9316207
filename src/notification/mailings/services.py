from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

import msgspec
import structlog
from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from procrastinate import App
from sqlalchemy import ColumnElement, func, select

from notification.audiences.service import audience_key, check_audience_choice, is_empty
from notification.audit.models import AuditAction, AuditEntity
from notification.audit.trail import AuditTrail, snapshot
from notification.errors import Conflict, InvalidInput, NotFound
from notification.idempotency.store import IdempotentCreate
from notification.jobs import schedule_planning
from notification.mailings.models import Mailing, MailingStatus
from notification.mailings.schemas import (
    MailingCreate,
    MailingFilter,
    MailingPatch,
    MailingRead,
    RetryRequest,
    SendWindow,
)
from notification.messages.state import state
from notification.texts.service import check_text, least_cost

logger = structlog.get_logger(__name__)

# Left out of a mailing's audit record: they follow from its text, whose every change is recorded.
DERIVED_FROM_TEXT = frozenset({"encoding", "parts", "variables"})
# Written by planning, not by a change: left out of a change's audit record.
WRITTEN_BY_PLANNING = frozenset({"left_out"})

# Fields whose change alters who receives the mailing or when; text is read at send time instead.
PLANNING_FIELDS = frozenset({"start_at", "end_at", "kind", "filter", "send_window", "audience_id"})


class MailingRepository(SQLAlchemyAsyncRepository[Mailing]):
    model_type = Mailing


def parse_local_time(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


def _in_utc_range(value: dt.datetime) -> bool:
    try:
        value.astimezone(dt.UTC)
    except OverflowError:
        return False
    return True


def validate_mailing(text: str, start_at: dt.datetime, end_at: dt.datetime, window: SendWindow | None) -> None:
    """The rules of CROSS_FIELD_RULES, each with its field."""
    errors: list[tuple[str, str]] = []
    if not text.strip():
        errors.append(("text", "must not be blank"))
    out_of_range = [name for name, value in (("start_at", start_at), ("end_at", end_at)) if not _in_utc_range(value)]
    errors.extend((name, "must fall between 0001-01-01 and 9999-12-31 in UTC") for name in out_of_range)
    if not out_of_range and end_at <= start_at:
        errors.append(("end_at", "must be after start_at"))
    if window is not None and window.start == window.end:
        errors.append(("send_window.end", "must differ from send_window.start"))
    if errors:
        raise InvalidInput(errors)


def _columns(
    text: str,
    kind: str,
    start_at: dt.datetime,
    end_at: dt.datetime,
    filter_: MailingFilter,
    window: SendWindow | None,
) -> dict[str, object]:
    sms = least_cost(text)
    return {
        "text": text,
        "kind": str(kind),
        "encoding": sms.encoding.value,
        "parts": sms.parts,
        "start_at": start_at,
        "end_at": end_at,
        **filter_.columns(),
        "send_window_start": parse_local_time(window.start) if window else None,
        "send_window_end": parse_local_time(window.end) if window else None,
    }


def _status_column() -> ColumnElement[str]:
    # Typed as the str it loads as; in a query it is the model's status expression.
    return cast("ColumnElement[str]", Mailing.status)


async def plan_committed(job_queue: App, mailing: Mailing) -> None:
    """Enqueue planning once the mailing is committed; if this fails, the reconciler plans it."""
    try:
        await schedule_planning(job_queue, mailing.id, mailing.plan_version, mailing.start_at)
    except Exception:
        logger.warning("planning not enqueued, the reconciler will", mailing_id=mailing.id, exc_info=True)


class MailingService(SQLAlchemyAsyncRepositoryService[Mailing, MailingRepository]):
    """Every change commits here, its audit record with it, and what follows the commit (planning)
    happens here too: the API and the console only call these methods."""

    repository_type = MailingRepository
    # A window-function count says 0 for a page past the end; totals must count every row.
    count_with_window_function = False

    async def get_mailing(self, mailing_id: int, *, for_change: bool = False) -> Mailing:
        """The mailing, locked until the transaction ends when it is about to change or go, so that a
        concurrent change or deletion waits for this one instead of finding its row gone."""
        mailing = await self.repository.get_one_or_none(
            id=mailing_id, with_for_update=for_change, execution_options={"populate_existing": True}
        )
        if mailing is None:
            raise NotFound("mailing", mailing_id)
        return mailing

    async def _hold_for_control(self, mailing_id: int) -> Mailing:
        """The mailing locked until the transaction ends, FOR NO KEY UPDATE: a pause, resume or retry
        changes none of its keys, and a stronger lock would also hold off the foreign-key check of a
        batch adding its mailing's first counter row of a kind while that batch holds messages a
        retry waits for (a deadlock)."""
        mailing = await self.repository.get_one_or_none(
            id=mailing_id, with_for_update={"key_share": True}, execution_options={"populate_existing": True}
        )
        if mailing is None:
            raise NotFound("mailing", mailing_id)
        return mailing

    async def list_mailings(
        self, page: LimitOffset, status: MailingStatus | None = None, newest_first: bool = False
    ) -> tuple[Sequence[Mailing], int]:
        conditions = [_status_column() == status.value] if status is not None else []
        order = OrderBy("id", "desc" if newest_first else "asc")
        return await self.list_and_count(page, order, *conditions)

    async def count_by_status(self) -> dict[MailingStatus, int]:
        """Mailings in each status, zeros included."""
        rows = await self.repository.session.execute(select(_status_column(), func.count()).group_by(_status_column()))
        counted = {MailingStatus(status): int(n) for status, n in rows}
        return {status: counted.get(status, 0) for status in MailingStatus}

    def audited(self, mailing: Mailing) -> dict[str, Any]:
        fields = snapshot(self.to_schema(mailing, schema_type=MailingRead))
        return {
            name: value
            for name, value in fields.items()
            if name not in DERIVED_FROM_TEXT and name not in WRITTEN_BY_PLANNING
        }

    async def _commit(self, job_queue: App | None = None, mailing: Mailing | None = None) -> None:
        """The change, its audit record (and idempotency key) committed together; then, when the
        mailing is to be planned, planning is enqueued: once committed, it is there to plan. Without
        a job queue (a caller outside the app), the reconciler plans it within a minute."""
        await self.repository.session.commit()
        if job_queue is not None and mailing is not None:
            await plan_committed(job_queue, mailing)

    async def create_mailing(
        self,
        data: MailingCreate,
        audit: AuditTrail,
        job_queue: App | None = None,
        idempotent: IdempotentCreate | None = None,
    ) -> Mailing:
        """A create under an ``Idempotency-Key`` keeps its answer with the key, in the same commit."""
        mailing = await self.add_mailing(data, audit)
        if idempotent is not None:
            await idempotent.remember_created(self.to_schema(mailing, schema_type=MailingRead))
        await self._commit(job_queue, mailing)
        return mailing

    async def add_mailing(
        self, data: MailingCreate, audit: AuditTrail, occurrence: tuple[int, dt.datetime] | None = None
    ) -> Mailing:
        """The mailing and its audit record, written but not committed: the part of a create that a
        service whose one commit holds more (a schedule's occurrences and its mark) shares; that
        service commits, then enqueues planning with :func:`plan_committed`. ``occurrence`` is the
        (schedule id, occurrence time) the mailing is made for."""
        validate_mailing(data.text, data.start_at, data.end_at, data.send_window)
        await check_audience_choice(self.repository.session, data.audience_id, data.filter)
        await check_text(self.repository.session, data.text)
        mailing = Mailing(**_columns(data.text, data.kind, data.start_at, data.end_at, data.filter, data.send_window))
        mailing.audience_id = audience_key(data.audience_id)
        if occurrence is not None:
            mailing.schedule_id, mailing.occurrence_at = occurrence
        mailing = await self.create(mailing, auto_commit=False)
        mailing = await self.get_mailing(mailing.id)
        await audit.created(AuditEntity.MAILING, mailing.id, self.audited(mailing))
        return mailing

    async def pause_mailing(self, mailing_id: int, audit: AuditTrail) -> Mailing:
        """Running batches stop starting requests once the workers read this (four times a second);
        pausing a paused mailing changes nothing (the request is still recorded)."""
        mailing = await self._hold_for_control(mailing_id)
        if mailing.status == MailingStatus.FINISHED:
            raise Conflict("status", "the mailing is finished: there is nothing left to pause")
        before = mailing.paused_at
        if before is None:
            mailing.paused_at = dt.datetime.now(dt.UTC)
            await self.update(mailing, auto_commit=False, auto_refresh=False)
        mailing = await self.get_mailing(mailing_id)
        changes = {"paused_at": (before, mailing.paused_at)} if before is None else {}
        await audit.record(AuditAction.PAUSE, AuditEntity.MAILING, mailing_id, changes)
        await self._commit()
        return mailing

    async def resume_mailing(
        self, mailing_id: int, audit: AuditTrail, job_queue: App | None = None
    ) -> tuple[Mailing, bool]:
        """Clear the pause; the flag says whether the mailing needs planning again (it was
        paused: its pending messages get new send jobs, the old ones know themselves superseded)."""
        mailing = await self._hold_for_control(mailing_id)
        if mailing.status == MailingStatus.FINISHED:
            raise Conflict("status", "the mailing is finished; retry its messages with a new end_at instead")
        before = mailing.paused_at
        replan = before is not None
        if replan:
            mailing.paused_at = None
            mailing.plan_version += 1
            await self.update(mailing, auto_commit=False, auto_refresh=False)
        mailing = await self.get_mailing(mailing_id)
        changes = {"paused_at": (before, None)} if replan else {}
        await audit.record(AuditAction.RESUME, AuditEntity.MAILING, mailing_id, changes)
        await self._commit(job_queue, mailing if replan else None)
        return mailing, replan

    async def retry_messages(
        self, mailing_id: int, request: RetryRequest, audit: AuditTrail, job_queue: App | None = None
    ) -> tuple[Mailing, int, bool]:
        """Put the mailing's messages in the given statuses back to pending, moving its end
        when asked; returns the mailing, how many were re-queued, and whether to plan it again."""
        mailing = await self._hold_for_control(mailing_id)
        now = dt.datetime.now(dt.UTC)
        if request.end_at is not None:
            if not _in_utc_range(request.end_at):
                raise InvalidInput.of("end_at", "must fall between 0001-01-01 and 9999-12-31 in UTC")
            if request.end_at <= now:
                raise InvalidInput.of("end_at", "must be in the future")
            if request.end_at <= mailing.start_at:
                raise InvalidInput.of("end_at", "must be after start_at")
        elif mailing.end_at <= now:
            raise InvalidInput.of(
                "end_at",
                f"is required once the mailing has ended (at {mailing.end_at.isoformat()}):"
                " give a new end in the future",
            )
        if mailing.messages_purged_at is not None:
            # Its messages are gone: planning again would send to every client a second time.
            raise Conflict("statuses", "the mailing's messages were deleted by retention; none is left to retry")
        session = self.repository.session
        statuses = sorted(set(request.statuses))
        result = await session.execute(
            state.text("requeue_for_retry"), {"mailing_id": mailing_id, "statuses": statuses}
        )
        requeued = int(getattr(result, "rowcount", 0))
        before_end = mailing.end_at
        moved = request.end_at is not None and request.end_at != before_end
        replan = requeued > 0 or moved
        if request.end_at is not None:
            mailing.end_at = request.end_at
        if replan:
            mailing.plan_version += 1
            await self.update(mailing, auto_commit=False, auto_refresh=False)
        mailing = await self.get_mailing(mailing_id)
        changes: dict[str, tuple[Any, Any]] = {"statuses": (None, statuses), "requeued": (None, requeued)}
        if moved:
            changes["end_at"] = (before_end, mailing.end_at)
        await audit.record(AuditAction.RETRY, AuditEntity.MAILING, mailing_id, changes)
        await self._commit(job_queue, mailing if replan else None)
        return mailing, requeued, replan

    async def patch_mailing(
        self, mailing_id: int, patch: MailingPatch, audit: AuditTrail, job_queue: App | None = None
    ) -> tuple[Mailing, bool]:
        """Apply the change; the flag says whether the mailing needs planning again."""
        mailing = await self.get_mailing(mailing_id, for_change=True)
        current = self.to_schema(mailing, schema_type=MailingRead)
        before = snapshot(current)
        changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
        # Choosing an audience drops the mailing's own filter, and choosing a filter drops the audience.
        if changes.get("audience_id") is not None and "filter" not in changes:
            changes["filter"] = MailingFilter()
        elif "filter" in changes and not is_empty(changes["filter"]) and "audience_id" not in changes:
            changes["audience_id"] = None
        merged = msgspec.structs.replace(current, **changes)
        validate_mailing(merged.text, merged.start_at, merged.end_at, merged.send_window)
        await check_audience_choice(self.repository.session, merged.audience_id, merged.filter)
        if merged.text != current.text:
            await check_text(self.repository.session, merged.text)
        changed = sorted(name for name in PLANNING_FIELDS if getattr(current, name) != getattr(merged, name))
        replan = bool(changed)
        if replan and mailing.messages_purged_at is not None:
            # Its messages are gone: planning again would send to every client a second time.
            raise Conflict(changed[0], "the mailing's messages were deleted by retention; it cannot be planned again")
        for name, value in _columns(
            merged.text, merged.kind, merged.start_at, merged.end_at, merged.filter, merged.send_window
        ).items():
            setattr(mailing, name, value)
        mailing.audience_id = audience_key(merged.audience_id)
        if replan:
            mailing.plan_version += 1
        await self.update(mailing, auto_commit=False, auto_refresh=False)
        # Read again before the commit: once committed, a waiting deletion may take the row.
        mailing = await self.get_mailing(mailing_id)
        await audit.updated(AuditEntity.MAILING, mailing_id, before, self.audited(mailing))
        await self._commit(job_queue, mailing if replan else None)
        return mailing, replan

    async def replace_mailing(
        self, mailing_id: int, data: MailingCreate, audit: AuditTrail, job_queue: App | None = None
    ) -> tuple[Mailing, bool]:
        patch = MailingPatch(
            text=data.text,
            start_at=data.start_at,
            end_at=data.end_at,
            kind=data.kind,
            filter=data.filter,
            send_window=data.send_window,
            audience_id=data.audience_id,
        )
        return await self.patch_mailing(mailing_id, patch, audit, job_queue)

    async def delete_mailing(self, mailing_id: int, audit: AuditTrail) -> None:
        # Messages go with it (ON DELETE CASCADE); a send job that wakes up finds nothing to claim.
        # Locks are taken in the order every writer uses (the mailing, then its messages by id),
        # so the cascade never deadlocks with a batch recording its results.
        mailing = await self.get_mailing(mailing_id, for_change=True)
        await audit.deleted(AuditEntity.MAILING, mailing_id, self.audited(mailing))
        await self.repository.session.execute(state.text("lock_messages_of_mailing"), {"mailing_id": mailing_id})
        await self.delete(mailing_id, auto_commit=False)
        await self._commit()
