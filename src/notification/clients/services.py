from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec
from advanced_alchemy.exceptions import IntegrityError
from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import ColumnElement, Select, bindparam, func, literal, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.types import DateTime, String

from notification.audit.models import AuditAction, AuditEntity
from notification.audit.trail import AuditTrail, snapshot
from notification.clients.models import Client
from notification.clients.queries import audience_conditions, statements
from notification.clients.schemas import (
    ClientCreate,
    ClientPatch,
    ClientRead,
    ClientSearch,
    attribute_name_errors,
)
from notification.errors import Conflict, InvalidInput, NotFound
from notification.idempotency.store import IdempotentCreate
from notification.messages.state import state
from notification.texts.templates import CLIENT_FIELDS
from notification.timezones import is_known_timezone


class ClientRepository(SQLAlchemyAsyncRepository[Client]):
    model_type = Client


def _default_operator_code(phone: str) -> str:
    return phone[1:4]


PHONE_LENGTH = 11
PresentColumn = Literal["operator_code", "tag", "timezone"]


def client_conditions(
    *,
    phone_prefix: str | None = None,
    operator_code: str | None = None,
    tag: str | None = None,
    timezone: str | None = None,
) -> list[ColumnElement[bool]]:
    """Who a search selects; no field given filters nothing."""
    conditions: list[ColumnElement[bool]] = []
    if phone_prefix:
        # Every phone has exactly 11 digits, so the prefix is a range of the phone's unique index,
        # whatever the database's collation (LIKE 'p%' would need a text_pattern_ops index).
        padding = PHONE_LENGTH - len(phone_prefix)
        conditions.append(Client.phone.between(phone_prefix + "0" * padding, phone_prefix + "9" * padding))
    if operator_code is not None:
        conditions.append(Client.operator_code == operator_code)
    if tag is not None:
        conditions.append(Client.tag == tag)
    if timezone is not None:
        conditions.append(Client.timezone == timezone)
    return conditions


def _search_conditions(search: ClientSearch) -> list[ColumnElement[bool]]:
    return client_conditions(
        phone_prefix=search.phone_prefix, operator_code=search.operator_code, tag=search.tag, timezone=search.timezone
    )


def search_order(search: ClientSearch) -> tuple[InstrumentedAttribute[Any], bool]:
    """The column a search is listed by, and whether descending. Each order is one an index reads
    in a bounded number of rows whatever the data: a phone search lists numbers in order (a range
    of the phone index, read in its order); any other lists the newest first, by an index of its
    filter column that ends with the id (operator code, tag, time zone). Ordering a filtered
    search by the primary key alone would walk it from the newest client down to the first match,
    which for clients that all joined long ago is the whole directory."""
    if search.phone_prefix:
        return Client.phone, False
    return Client.id, True


def search_key(search: ClientSearch, client: Client) -> str:
    """Where a page of this search starts or ends, as its cursor."""
    column, _ = search_order(search)
    return str(getattr(client, column.key))


def search_statement(
    search: ClientSearch, limit: int, after: str | None = None, before: str | None = None
) -> Select[Client]:
    """A page of the search in its order: the rows after the cursor ``after``, or those just before
    ``before`` (read backwards: reverse them), so that no page costs more than its rows, however
    deep it is."""
    column, descending = search_order(search)
    key: str | int | None = after if before is None else before
    if key is not None and column is Client.id:
        key = int(key)
    statement = select(Client).where(*_search_conditions(search))
    if before is not None:
        backwards = column > key if descending else column < key
        return statement.where(backwards).order_by(column.asc() if descending else column.desc()).limit(limit)
    if after is not None:
        statement = statement.where(column < key if descending else column > key)
    return statement.order_by(column.desc() if descending else column.asc()).limit(limit)


def search_count_statement(search: ClientSearch, cap: int) -> Select[int]:
    """How many match, counted up to ``cap``: a page shows "more than N" rather than count a million rows."""
    # In the pages' order, so that the plan is theirs: an index walk that stops at the cap, never a
    # sequential scan (which, for a filter matching most clients, PostgreSQL may find as cheap).
    column, descending = search_order(search)
    matching = (
        select(literal(1))
        .select_from(Client)
        .where(*_search_conditions(search))
        .order_by(column.desc() if descending else column.asc())
        .limit(cap)
        .subquery()
    )
    return select(func.count()).select_from(matching)


_PRESENT_VALUES = {
    column: statements.text("present_values", column=column) for column in ("operator_code", "tag", "timezone")
}


_TEXT_COLUMNS = ("phone", "operator_code", "tag", "timezone")
_CONSENT_INSTANTS = ("consent_given_at", "consent_revoked_at")
_INSTANT = DateTime(timezone=True)


def _instant(value: dt.datetime | None) -> str | None:
    # An import's columns travel as arrays of text; the statement casts these back.
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def consent_stands(client: Client) -> bool:
    return client.consent_given_at is not None and client.consent_revoked_at is None


def _check_instants(row: ClientCreate | ClientPatch, prefix: str, errors: list[tuple[str, str]]) -> None:
    for name in _CONSENT_INSTANTS:
        value = getattr(row, name)
        if isinstance(value, dt.datetime):
            try:
                value.astimezone(dt.UTC)
            except OverflowError:
                errors.append((f"{prefix}{name}", "must fall between 0001-01-01 and 9999-12-31 in UTC"))


def _check_timezone(value: str, field: str, errors: list[tuple[str, str]]) -> None:
    if not is_known_timezone(value):
        errors.append((field, f"unknown IANA time zone {value!r}"))


def _check_attributes(attributes: dict[str, str], prefix: str, errors: list[tuple[str, str]]) -> None:
    errors.extend(attribute_name_errors(attributes, f"{prefix}attributes"))
    # A text names a client's field and its attributes alike: one name must mean one thing.
    errors.extend(
        (f"{prefix}attributes.{name}", "must not be the name of a client field")
        for name in CLIENT_FIELDS
        if name in attributes
    )


class ClientService(SQLAlchemyAsyncRepositoryService[Client, ClientRepository]):
    """Every change commits here, its audit record with it: the API and the console only call
    these methods."""

    repository_type = ClientRepository
    # A window-function count says 0 for a page past the end; totals must count every row.
    count_with_window_function = False

    async def get_client(self, client_id: int, *, for_change: bool = False) -> Client:
        """The client, locked until the transaction ends when it is about to change or go, so that a
        concurrent change or deletion waits for this one instead of finding its row gone."""
        client = await self.get_one_or_none(id=client_id, with_for_update=for_change)
        if client is None:
            raise NotFound("client", client_id)
        return client

    async def list_clients(
        self, page: LimitOffset, operator_code: str | None, tag: str | None
    ) -> tuple[Sequence[Client], int]:
        filters: dict[str, Any] = {}
        if operator_code is not None:
            filters["operator_code"] = operator_code
        if tag is not None:
            filters["tag"] = tag
        return await self.list_and_count(page, OrderBy("id", "asc"), **filters)

    async def search_clients(
        self, search: ClientSearch, limit: int, after: str | None = None, before: str | None = None
    ) -> tuple[list[Client], bool]:
        """A page in the search's order, and whether more lie beyond it in the direction it was read."""
        session = self.repository.session
        rows = list((await session.scalars(search_statement(search, limit + 1, after, before))).all())
        more = len(rows) > limit
        rows = rows[:limit]
        if before is not None:
            rows.reverse()
        return rows, more

    async def count_clients(self, search: ClientSearch, cap: int) -> int:
        return int((await self.repository.session.execute(search_count_statement(search, cap))).scalar_one())

    async def count_matching(
        self, operator_codes: Sequence[str], tags: Sequence[str], attributes: Mapping[str, str] | None = None
    ) -> int:
        """The audience of a mailing filter, counted set-based."""
        conditions = audience_conditions(operator_codes, tags, attributes)
        statement = select(func.count()).select_from(Client).where(*conditions)
        return int((await self.repository.session.execute(statement)).scalar_one())

    async def present_values(self, column: PresentColumn, limit: int = 500) -> list[str]:
        """Values of a column found in the directory, sorted, at most ``limit`` of them."""
        result = await self.repository.session.execute(_PRESENT_VALUES[column], {"limit": limit})
        return [value for (value,) in result]

    def audited(self, client: Client) -> dict[str, Any]:
        return snapshot(self.to_schema(client, schema_type=ClientRead))

    async def create_client(self, data: ClientCreate, audit: AuditTrail) -> Client:
        client = (await self._insert_clients([data], field_prefix=""))[0]
        await audit.created(AuditEntity.CLIENT, client.id, self.audited(client))
        await self.repository.session.commit()
        return client

    async def create_clients(
        self, rows: Sequence[ClientCreate], audit: AuditTrail, idempotent: IdempotentCreate | None = None
    ) -> list[Client]:
        """An import: every row or none, recorded as one change; under an ``Idempotency-Key`` its
        answer is kept with the key, in the same commit."""
        created = await self._insert_clients(rows)
        await audit.record(
            AuditAction.IMPORT,
            AuditEntity.CLIENT,
            None,
            {"count": (None, len(created)), "first_id": (None, created[0].id), "last_id": (None, created[-1].id)},
        )
        if idempotent is not None:
            await idempotent.remember_created(list(self.to_schema(created, schema_type=ClientRead).items))
        await self.repository.session.commit()
        return created

    async def _insert_clients(self, rows: Sequence[ClientCreate], field_prefix: str = "[{i}].") -> list[Client]:
        """Insert every row or none: one statement over arrays, conflicts named by row."""
        errors: list[tuple[str, str]] = []
        first_row_of_phone: dict[str, int] = {}
        for i, row in enumerate(rows):
            prefix = field_prefix.format(i=i)
            _check_timezone(row.timezone, f"{prefix}timezone", errors)
            _check_attributes(row.attributes, prefix, errors)
            _check_instants(row, prefix, errors)
            if (seen := first_row_of_phone.setdefault(row.phone, i)) != i:
                errors.append((f"{prefix}phone", f"phone {row.phone} repeats row {seen}"))
        if errors:
            raise InvalidInput(errors[:100])

        columns = {
            "phone": [r.phone for r in rows],
            "operator_code": [r.operator_code or _default_operator_code(r.phone) for r in rows],
            "tag": [r.tag for r in rows],
            "timezone": [r.timezone for r in rows],
            "attributes": [msgspec.json.encode(r.attributes).decode() for r in rows],
            "consent_given_at": [_instant(r.consent_given_at) for r in rows],
            "consent_source": [r.consent_source for r in rows],
            "consent_revoked_at": [_instant(r.consent_revoked_at) for r in rows],
        }
        selected = [
            *(literal_column(f"unnest_rows.{name}", String) for name in _TEXT_COLUMNS),
            literal_column("unnest_rows.attributes::jsonb", JSONB),
            literal_column("unnest_rows.consent_source", String),
            *(
                literal_column(f"unnest_rows.{name}::timestamptz", DateTime(timezone=True))
                for name in _CONSENT_INSTANTS
            ),
        ]
        source = select(*selected).select_from(
            statements.text("imported_rows").bindparams(*(bindparam(name, type_=ARRAY(String)) for name in columns))
        )
        inserted = (
            insert(Client)
            .from_select([*_TEXT_COLUMNS, "attributes", "consent_source", *_CONSENT_INSTANTS], source)
            .on_conflict_do_nothing(index_elements=["phone"])
            .returning(Client)
        )
        # ORDER BY id over the RETURNING rows gives them back in request order.
        result = await self.repository.session.execute(
            select(Client).from_statement(inserted), columns, execution_options={"populate_existing": True}
        )
        created = sorted(result.scalars().all(), key=lambda c: c.id)
        if len(created) != len(rows):
            created_phones = {c.phone for c in created}
            i, phone = next((i, r.phone) for i, r in enumerate(rows) if r.phone not in created_phones)
            raise Conflict(f"{field_prefix.format(i=i)}phone", f"a client with phone {phone} already exists")
        return created

    async def patch_client(self, client_id: int, patch: ClientPatch, audit: AuditTrail) -> Client:
        client = await self.get_client(client_id, for_change=True)
        before = self.audited(client)
        changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
        errors: list[tuple[str, str]] = []
        if "timezone" in changes:
            _check_timezone(changes["timezone"], "timezone", errors)
        if "attributes" in changes:
            _check_attributes(changes["attributes"], "", errors)
        _check_instants(patch, "", errors)
        if errors:
            raise InvalidInput(errors)
        consented_before = consent_stands(client)
        for name, value in changes.items():
            setattr(client, name, value)
        phone = client.phone
        try:
            # The phone is the only unique column a change can collide on; validation covers the rest.
            client = await self.update(client, auto_commit=False)
        except IntegrityError:
            raise Conflict("phone", f"a client with phone {phone} already exists") from None
        if consented_before and not consent_stands(client):
            # Withdrawn: what is pending of its advertising goes now, and a batch holding one
            # drops it at its watcher's next look.
            await self.repository.session.execute(
                state.text("cancel_advertising_of_clients"), {"client_ids": [client_id]}
            )
        await audit.updated(AuditEntity.CLIENT, client_id, before, self.audited(client))
        await self.repository.session.commit()
        return client

    async def replace_client(self, client_id: int, data: ClientCreate, audit: AuditTrail) -> Client:
        full = ClientPatch(
            phone=data.phone,
            timezone=data.timezone,
            operator_code=data.operator_code or _default_operator_code(data.phone),
            tag=data.tag,
            attributes=data.attributes,
            consent_given_at=data.consent_given_at,
            consent_source=data.consent_source,
            consent_revoked_at=data.consent_revoked_at,
        )
        return await self.patch_client(client_id, full, audit)

    async def delete_client(self, client_id: int, audit: AuditTrail) -> None:
        client = await self.get_client(client_id, for_change=True)
        await audit.deleted(AuditEntity.CLIENT, client_id, self.audited(client))
        # Its pending messages are cancelled as any cancellation is; sent history stays, detached,
        # in the statistics.
        await self.repository.session.execute(state.text("cancel_of_client"), {"client_id": client_id})
        await self.delete(client_id, auto_commit=False)
        await self.repository.session.commit()


__all__ = ("ClientRepository", "ClientService")
