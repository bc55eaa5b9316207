"""Audiences, facets and operator code names: the rules, and the reads other domains ask of them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from advanced_alchemy.exceptions import IntegrityError
from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import ColumnElement, bindparam, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from notification.audiences.models import Audience, OperatorCodeName
from notification.audiences.queries import statements
from notification.audiences.schemas import (
    AudienceCreate,
    AudiencePatch,
    AudienceRead,
    Facets,
    OperatorCodeFacet,
    OperatorCodeRead,
    TagFacet,
)
from notification.audit.models import AuditAction, AuditEntity
from notification.audit.trail import AuditTrail, snapshot
from notification.clients.schemas import attribute_name_errors
from notification.errors import Conflict, InvalidInput, NotFound
from notification.mailings.models import Mailing, MailingStatus
from notification.mailings.schemas import MailingFilter
from notification.schedules.models import Schedule

if TYPE_CHECKING:
    from notification.preview.service import Audience as PreviewAudience

Session = AsyncSession | async_scoped_session[AsyncSession]

# Named in a 409: enough to find them, not a page of ids.
LISTED_USERS = 20


def audience_key(audience_id: float | None) -> int | None:
    """The id as the int it is (a JSON body may write it 12.0)."""
    return None if audience_id is None else int(audience_id)


def is_empty(filter_: MailingFilter) -> bool:
    return filter_.is_empty()


def check_filter(filter_: MailingFilter) -> None:
    """A filter's attribute names are names a client can have."""
    if errors := attribute_name_errors(filter_.attributes, "filter.attributes"):
        raise InvalidInput(errors)


async def check_audience_choice(session: Session, audience_id: float | None, filter_: MailingFilter) -> None:
    """A mailing or schedule uses a saved audience or its own filter, never both; the audience must exist;
    the filter's attribute names are names a client can have."""
    check_filter(filter_)
    if audience_id is None:
        return
    if not is_empty(filter_):
        raise InvalidInput.of("audience_id", "excludes a non-empty filter: give either audience_id or a filter")
    if await session.get(Audience, int(audience_id)) is None:
        raise InvalidInput.of("audience_id", f"must name an existing audience ({audience_id} does not exist)")


async def with_saved_audience(
    session: Session, audience: PreviewAudience, audience_id: float | None
) -> PreviewAudience:
    """A preview's audience with the saved audience's filter in place of its own, as planning would read it."""
    if audience_id is None:
        return audience
    saved = await session.get(Audience, int(audience_id))
    if saved is None:
        raise InvalidInput.of("audience_id", f"must name an existing audience ({audience_id} does not exist)")
    return dataclasses.replace(
        audience,
        operator_codes=list(saved.filter_operator_codes),
        tags=list(saved.filter_tags),
        attributes=dict(saved.filter_attributes),
    )


async def planned_filter(session: Session, filter_: MailingFilter, audience_id: float | None) -> MailingFilter:
    """The filter planning would read now: the saved audience's when there is one (a deleted
    audience leaves a finished mailing its filter, so a missing one falls back to the mailing's)."""
    saved = await session.get(Audience, int(audience_id)) if audience_id is not None else None
    if saved is None:
        return filter_
    return MailingFilter(
        operator_codes=list(saved.filter_operator_codes),
        tags=list(saved.filter_tags),
        attributes=dict(saved.filter_attributes),
    )


def _filter_columns(filter_: MailingFilter) -> dict[str, Any]:
    check_filter(filter_)
    return filter_.columns()


def _check_name(name: str) -> str:
    if not name.strip():
        raise InvalidInput.of("name", "must not be blank")
    return name


class AudienceRepository(SQLAlchemyAsyncRepository[Audience]):
    model_type = Audience


class AudienceService(SQLAlchemyAsyncRepositoryService[Audience, AudienceRepository]):
    repository_type = AudienceRepository
    count_with_window_function = False

    def audited(self, audience: Audience) -> dict[str, Any]:
        return snapshot(self.to_schema(audience, schema_type=AudienceRead))

    async def get_audience(self, audience_id: int, *, for_change: bool = False) -> Audience:
        audience = await self.repository.get_one_or_none(
            id=audience_id, with_for_update=for_change, execution_options={"populate_existing": True}
        )
        if audience is None:
            raise NotFound("audience", audience_id)
        return audience

    async def list_audiences(self, page: LimitOffset) -> tuple[Sequence[Audience], int]:
        return await self.list_and_count(page, OrderBy("name", "asc"))

    async def all_audiences(self) -> Sequence[Audience]:
        return await self.list(OrderBy("name", "asc"))

    async def _name_taken(self, name: str, other_than: int | None = None) -> None:
        conditions: list[ColumnElement[bool]] = [Audience.name == name]
        if other_than is not None:
            conditions.append(Audience.id != other_than)
        if await self.repository.exists(*conditions):
            raise Conflict("name", f"an audience named {name!r} already exists")

    async def create_audience(self, data: AudienceCreate, audit: AuditTrail) -> Audience:
        name = _check_name(data.name)
        await self._name_taken(name)
        try:
            audience = await self.create(Audience(name=name, **_filter_columns(data.filter)), auto_commit=False)
        except IntegrityError:
            raise Conflict("name", f"an audience named {name!r} already exists") from None
        await audit.created(AuditEntity.AUDIENCE, audience.id, self.audited(audience))
        await self.repository.session.commit()
        return audience

    async def patch_audience(self, audience_id: int, patch: AudiencePatch, audit: AuditTrail) -> Audience:
        audience = await self.get_audience(audience_id, for_change=True)
        before = self.audited(audience)
        if patch.name is not msgspec.UNSET:
            # Checked before the change is set: the check's query would flush it first.
            await self._name_taken(_check_name(patch.name), other_than=audience_id)
            audience.name = patch.name
        if patch.filter is not msgspec.UNSET:
            for name, value in _filter_columns(patch.filter).items():
                setattr(audience, name, value)
        try:
            audience = await self.update(audience, auto_commit=False)
        except IntegrityError:
            raise Conflict("name", f"an audience named {audience.name!r} already exists") from None
        await audit.updated(AuditEntity.AUDIENCE, audience_id, before, self.audited(audience))
        await self.repository.session.commit()
        return audience

    async def users(self, audience_id: int) -> tuple[list[int], list[int]]:
        """Mailings not yet finished (they resolve the audience when planned) and schedules using it."""
        session = self.repository.session
        status: ColumnElement[str] = Mailing.status  # type: ignore[assignment]
        mailings = await session.scalars(
            select(Mailing.id)
            .where(Mailing.audience_id == audience_id, status != MailingStatus.FINISHED.value)
            .order_by(Mailing.id)
            .limit(LISTED_USERS + 1)
        )
        schedules = await session.scalars(
            select(Schedule.id).where(Schedule.audience_id == audience_id).order_by(Schedule.id).limit(LISTED_USERS + 1)
        )
        return list(mailings), list(schedules)

    async def delete_audience(self, audience_id: int, audit: AuditTrail) -> None:
        # Locked first: a mailing or schedule taking this audience meanwhile waits for the deletion
        # (its foreign key check shares the row), and is refused once it is gone.
        audience = await self.get_audience(audience_id, for_change=True)
        mailing_ids, schedule_ids = await self.users(audience_id)
        if mailing_ids or schedule_ids:
            await self.repository.session.rollback()
            raise Conflict("id", f"audience {audience_id} is in use by {_named(mailing_ids, schedule_ids)}")
        await self.repository.session.execute(
            statements.text("keep_filter_of_finished").bindparams(
                bindparam("attributes", dict(audience.filter_attributes), type_=JSONB)
            ),
            {
                "audience_id": audience_id,
                "operator_codes": list(audience.filter_operator_codes),
                "tags": list(audience.filter_tags),
            },
        )
        await audit.deleted(AuditEntity.AUDIENCE, audience_id, self.audited(audience))
        await self.delete(audience_id, auto_commit=True)


def _named(mailing_ids: list[int], schedule_ids: list[int]) -> str:
    def listed(kind: str, ids: list[int]) -> str:
        shown = ", ".join(str(i) for i in ids[:LISTED_USERS])
        more = " and more" if len(ids) > LISTED_USERS else ""
        return f"{kind} {shown}{more}"

    parts = []
    if mailing_ids:
        parts.append(listed("mailings" if len(mailing_ids) > 1 else "mailing", mailing_ids))
    if schedule_ids:
        parts.append(listed("schedules" if len(schedule_ids) > 1 else "schedule", schedule_ids))
    return " and ".join(parts)


async def facets(session: Session) -> Facets:
    tags: list[TagFacet] = []
    codes: list[OperatorCodeFacet] = []
    for kind, value, clients, name in await session.execute(statements.text("facets")):
        if kind == "tag":
            tags.append(TagFacet(tag=value, clients=int(clients)))
        else:
            codes.append(OperatorCodeFacet(code=value, name=name, clients=int(clients)))
    codes.extend(
        OperatorCodeFacet(code=code, name=name, clients=0)
        for code, name in await session.execute(statements.text("named_codes_without_clients"))
    )
    codes.sort(key=lambda facet: facet.code)
    return Facets(tags=tags, operator_codes=codes)


async def operator_code_names(session: Session) -> list[OperatorCodeRead]:
    rows = await session.scalars(select(OperatorCodeName).order_by(OperatorCodeName.code))
    return [OperatorCodeRead(code=row.code, name=row.name) for row in rows]


async def name_operator_code(session: Session, code: str, name: str, audit: AuditTrail) -> OperatorCodeRead:
    name = name.strip()
    if not name:
        raise InvalidInput.of("name", "must not be blank")
    row = await session.get(OperatorCodeName, code, with_for_update=True)
    before = row.name if row is not None else None
    if row is None:
        session.add(OperatorCodeName(code=code, name=name))
    else:
        row.name = name
    await session.flush()
    await audit.record(
        AuditAction.UPDATE if before is not None else AuditAction.CREATE,
        AuditEntity.OPERATOR_CODE,
        int(code),
        {"code": (None, code), "name": (before, name)},
    )
    await session.commit()
    return OperatorCodeRead(code=code, name=name)


async def unname_operator_code(session: Session, code: str, audit: AuditTrail) -> None:
    row = await session.get(OperatorCodeName, code, with_for_update=True)
    if row is None:
        raise NotFound("operator code name", int(code))
    await audit.record(
        AuditAction.DELETE, AuditEntity.OPERATOR_CODE, int(code), {"code": (code, None), "name": (row.name, None)}
    )
    await session.delete(row)
    await session.commit()
