from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import msgspec
from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import text

from notification.errors import Conflict, InvalidInput, NotFound
from notification.mailings.models import Mailing
from notification.mailings.schemas import MailingCreate, MailingFilter, MailingPatch, MailingRead, SendWindow

_LOCK_MAILING = text("SELECT id FROM mailings WHERE id = :mailing_id FOR UPDATE")
_LOCK_MESSAGES = text(
    "SELECT count(*) FROM (SELECT 1 FROM messages WHERE mailing_id = :mailing_id ORDER BY id FOR UPDATE) locked"
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
        created_at=mailing.created_at,
        updated_at=mailing.updated_at,
    )


def _validate(text: str, start_at: dt.datetime, end_at: dt.datetime, window: SendWindow | None) -> None:
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
    return {
        "text": text,
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

    async def create_mailing(self, data: MailingCreate) -> Mailing:
        _validate(data.text, data.start_at, data.end_at, data.send_window)
        mailing = Mailing(**_columns(data.text, data.start_at, data.end_at, data.filter, data.send_window))
        mailing = await self.create(mailing, auto_commit=True)
        return await self.get_mailing(mailing.id)

    async def patch_mailing(self, mailing_id: int, patch: MailingPatch) -> tuple[Mailing, bool]:
        """Apply the change; the flag says whether the mailing needs planning again."""
        mailing = await self.get_mailing(mailing_id)
        current = to_read(mailing)
        changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
        merged = msgspec.structs.replace(current, **changes)
        _validate(merged.text, merged.start_at, merged.end_at, merged.send_window)
        changed = sorted(name for name in PLANNING_FIELDS if getattr(current, name) != getattr(merged, name))
        replan = bool(changed)
        if replan and mailing.messages_purged_at is not None:
            # Its messages are gone: planning again would send to every client a second time.
            raise Conflict(changed[0], "the mailing's messages were deleted by retention; it cannot be planned again")
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
