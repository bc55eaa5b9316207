from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import msgspec
from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import select, text

from notification.errors import Conflict, InvalidInput, NotFound
from notification.mailings.models import Mailing, MailingStatus
from notification.mailings.schemas import (
    MailingCreate,
    MailingFilter,
    MailingPatch,
    MailingRead,
    RetryRequest,
    SendWindow,
)
from notification.mailings.sms import measure
from notification.messages.models import MessageStatus

_LOCK_MAILING = text("SELECT id FROM mailings WHERE id = :mailing_id FOR UPDATE")
_LOCK_MESSAGES = text(
    "SELECT count(*) FROM (SELECT 1 FROM messages WHERE mailing_id = :mailing_id ORDER BY id FOR UPDATE) locked"
)
# Attempts and the last error stay: the error is replaced by the next answer. Messages of a
# deleted client have nobody to go to.
_REQUEUE = text(
    """
    WITH requeued AS (
        SELECT id FROM messages
        WHERE mailing_id = :mailing_id AND status = ANY(:statuses) AND client_id IS NOT NULL
        ORDER BY id FOR UPDATE
    )
    UPDATE messages m SET status = :pending, due_at = now(), leased_until = NULL
    FROM requeued WHERE m.id = requeued.id
    """
)

# Fields whose change alters who receives the mailing or when; text is read at send time instead.
PLANNING_FIELDS = frozenset({"start_at", "end_at", "filter", "send_window"})


class MailingRepository(SQLAlchemyAsyncRepository[Mailing]):
    model_type = Mailing


def parse_local_time(value: str) -> dt.time:
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


def format_local_time(value: dt.time) -> str:
    return value.strftime("%H:%M")


def to_read(mailing: Mailing) -> MailingRead:
    window = None
    if mailing.send_window_start is not None and mailing.send_window_end is not None:
        window = SendWindow(
            start=format_local_time(mailing.send_window_start), end=format_local_time(mailing.send_window_end)
        )
    return MailingRead(
        id=mailing.id,
        text=mailing.text,
        start_at=mailing.start_at,
        end_at=mailing.end_at,
        filter=MailingFilter(operator_codes=list(mailing.filter_operator_codes), tags=list(mailing.filter_tags)),
        send_window=window,
        status=mailing.status,
        encoding=mailing.encoding,
        parts=mailing.parts,
        paused_at=mailing.paused_at,
        created_at=mailing.created_at,
        updated_at=mailing.updated_at,
    )


def validate_mailing(text: str, start_at: dt.datetime, end_at: dt.datetime, window: SendWindow | None) -> None:
    errors: list[tuple[str, str]] = []
    if not text.strip():
        errors.append(("text", "must not be blank"))
    if end_at <= start_at:
        errors.append(("end_at", "must be after start_at"))
    if window is not None and window.start == window.end:
        errors.append(("send_window.end", "must differ from send_window.start"))
    if errors:
        raise InvalidInput(errors)


def _columns(
    text: str, start_at: dt.datetime, end_at: dt.datetime, filter_: MailingFilter, window: SendWindow | None
) -> dict[str, object]:
    sms = measure(text)
    return {
        "text": text,
        "encoding": sms.encoding.value,
        "parts": sms.parts,
        "start_at": start_at,
        "end_at": end_at,
        # Sorted and deduplicated so that equal filters compare equal.
        "filter_operator_codes": sorted(set(filter_.operator_codes)),
        "filter_tags": sorted(set(filter_.tags)),
        "send_window_start": parse_local_time(window.start) if window else None,
        "send_window_end": parse_local_time(window.end) if window else None,
    }


class MailingService(SQLAlchemyAsyncRepositoryService[Mailing, MailingRepository]):
    repository_type = MailingRepository
    # A window-function count says 0 for a page past the end; totals must count every row.
    count_with_window_function = False

    async def get_mailing(self, mailing_id: int) -> Mailing:
        mailing = await self.repository.get_one_or_none(id=mailing_id, execution_options={"populate_existing": True})
        if mailing is None:
            raise NotFound("mailing", mailing_id)
        return mailing

    async def list_mailings(self, limit: int, offset: int) -> tuple[Sequence[Mailing], int]:
        return await self.list_and_count(LimitOffset(limit, offset), OrderBy("id", "asc"))

    async def create_mailing(self, data: MailingCreate, auto_commit: bool = True) -> Mailing:
        validate_mailing(data.text, data.start_at, data.end_at, data.send_window)
        mailing = Mailing(**_columns(data.text, data.start_at, data.end_at, data.filter, data.send_window))
        mailing = await self.create(mailing, auto_commit=auto_commit)
        return await self.get_mailing(mailing.id)

    async def _lock(self, mailing_id: int) -> Mailing:
        """The mailing, its row locked until the commit: a status read here holds while it is changed."""
        query = select(Mailing).where(Mailing.id == mailing_id).with_for_update(of=Mailing)
        mailing = (
            await self.repository.session.execute(query, execution_options={"populate_existing": True})
        ).scalar_one_or_none()
        if mailing is None:
            raise NotFound("mailing", mailing_id)
        return mailing

    async def pause_mailing(self, mailing_id: int) -> Mailing:
        """Running batches stop starting requests once the workers read this (twice a second);
        pausing a paused mailing changes nothing."""
        mailing = await self._lock(mailing_id)
        if mailing.status == MailingStatus.FINISHED:
            raise Conflict("status", "the mailing is finished: there is nothing left to pause")
        if mailing.paused_at is None:
            mailing.paused_at = dt.datetime.now(dt.UTC)
            await self.update(mailing, auto_commit=False)
        await self.repository.session.commit()
        return await self.get_mailing(mailing_id)

    async def resume_mailing(self, mailing_id: int) -> tuple[Mailing, bool]:
        """Clear the pause; the flag says whether the mailing needs planning again (it was
        paused: its pending messages get new send jobs, the old ones know themselves superseded)."""
        mailing = await self._lock(mailing_id)
        if mailing.status == MailingStatus.FINISHED:
            raise Conflict("status", "the mailing is finished; retry its messages with a new end_at instead")
        replan = mailing.paused_at is not None
        if replan:
            mailing.paused_at = None
            mailing.plan_version += 1
            await self.update(mailing, auto_commit=False)
        await self.repository.session.commit()
        return await self.get_mailing(mailing_id), replan

    async def retry_messages(self, mailing_id: int, request: RetryRequest) -> tuple[Mailing, int, bool]:
        """Put the mailing's messages in the given statuses back to pending, moving its end
        when asked; returns the mailing, how many were re-queued, and whether to plan it again."""
        mailing = await self._lock(mailing_id)
        now = dt.datetime.now(dt.UTC)
        if request.end_at is not None:
            if request.end_at <= now:
                raise InvalidInput.of("end_at", "must be in the future")
            if request.end_at <= mailing.start_at:
                raise InvalidInput.of("end_at", "must be after start_at")
        elif mailing.end_at <= now:
            raise InvalidInput.of(
                "end_at", f"required: the mailing ended at {mailing.end_at.isoformat()}; give a new end in the future"
            )
        session = self.repository.session
        result = await session.execute(
            _REQUEUE,
            {
                "mailing_id": mailing_id,
                "statuses": sorted(set(request.statuses)),
                "pending": MessageStatus.PENDING.value,
            },
        )
        requeued = int(getattr(result, "rowcount", 0))
        replan = requeued > 0 or (request.end_at is not None and request.end_at != mailing.end_at)
        if request.end_at is not None:
            mailing.end_at = request.end_at
        if replan:
            mailing.plan_version += 1
            await self.update(mailing, auto_commit=False)
        await session.commit()
        return await self.get_mailing(mailing_id), requeued, replan

    async def patch_mailing(self, mailing_id: int, patch: MailingPatch) -> tuple[Mailing, bool]:
        """Apply the change; the flag says whether the mailing needs planning again."""
        mailing = await self.get_mailing(mailing_id)
        current = to_read(mailing)
        changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
        merged = msgspec.structs.replace(current, **changes)
        validate_mailing(merged.text, merged.start_at, merged.end_at, merged.send_window)
        replan = any(getattr(current, name) != getattr(merged, name) for name in PLANNING_FIELDS)
        for name, value in _columns(
            merged.text, merged.start_at, merged.end_at, merged.filter, merged.send_window
        ).items():
            setattr(mailing, name, value)
        if replan:
            mailing.plan_version += 1
        await self.update(mailing, auto_commit=True)
        return await self.get_mailing(mailing_id), replan

    async def replace_mailing(self, mailing_id: int, data: MailingCreate) -> tuple[Mailing, bool]:
        patch = MailingPatch(
            text=data.text,
            start_at=data.start_at,
            end_at=data.end_at,
            filter=data.filter,
            send_window=data.send_window,
        )
        return await self.patch_mailing(mailing_id, patch)

    async def delete_mailing(self, mailing_id: int) -> None:
        await self.get_mailing(mailing_id)
        # Messages go with it (ON DELETE CASCADE); a send job that wakes up finds nothing to claim.
        # Locks are taken in the order every writer uses (the mailing, then its messages by id),
        # so the cascade never deadlocks with a batch recording its results.
        session = self.repository.session
        await session.execute(_LOCK_MAILING, {"mailing_id": mailing_id})
        await session.execute(_LOCK_MESSAGES, {"mailing_id": mailing_id})
        await self.delete(mailing_id, auto_commit=True)
