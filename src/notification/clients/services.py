from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from advanced_alchemy.exceptions import IntegrityError
from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import bindparam, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.types import String

from notification.clients.models import Client
from notification.clients.schemas import ClientCreate, ClientPatch
from notification.errors import Conflict, InvalidInput, NotFound
from notification.messages.models import Message, MessageStatus
from notification.timezones import is_known_timezone


class ClientRepository(SQLAlchemyAsyncRepository[Client]):
    model_type = Client


def _default_operator_code(phone: str) -> str:
    return phone[1:4]


def _check_timezone(value: str, field: str, errors: list[tuple[str, str]]) -> None:
    if not is_known_timezone(value):
        errors.append((field, f"unknown IANA time zone {value!r}"))


class ClientService(SQLAlchemyAsyncRepositoryService[Client, ClientRepository]):
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

    async def create_client(self, data: ClientCreate) -> Client:
        return (await self.create_clients([data], field_prefix=""))[0]

    async def create_clients(self, rows: Sequence[ClientCreate], field_prefix: str = "[{i}].") -> list[Client]:
        """Insert every row or none: one statement over arrays, conflicts named by row."""
        errors: list[tuple[str, str]] = []
        first_row_of_phone: dict[str, int] = {}
        for i, row in enumerate(rows):
            prefix = field_prefix.format(i=i)
            _check_timezone(row.timezone, f"{prefix}timezone", errors)
            if (seen := first_row_of_phone.setdefault(row.phone, i)) != i:
                errors.append((f"{prefix}phone", f"phone {row.phone} repeats row {seen}"))
        if errors:
            raise InvalidInput(errors[:100])

        columns = {
            "phone": [r.phone for r in rows],
            "operator_code": [r.operator_code or _default_operator_code(r.phone) for r in rows],
            "tag": [r.tag for r in rows],
            "timezone": [r.timezone for r in rows],
        }
        source = select(*(literal_column(f"unnest_rows.{name}", String) for name in columns)).select_from(
            text(
                "unnest(:phone, :operator_code, :tag, :timezone) AS unnest_rows(phone, operator_code, tag, timezone)"
            ).bindparams(*(bindparam(name, type_=ARRAY(String)) for name in columns))
        )
        inserted = (
            insert(Client)
            .from_select(list(columns), source)
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

    async def patch_client(self, client_id: int, patch: ClientPatch) -> Client:
        client = await self.get_client(client_id, for_change=True)
        changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
        errors: list[tuple[str, str]] = []
        if "timezone" in changes:
            _check_timezone(changes["timezone"], "timezone", errors)
        if errors:
            raise InvalidInput(errors)
        for name, value in changes.items():
            setattr(client, name, value)
        phone = client.phone
        try:
            # The phone is the only unique column a change can collide on; validation covers the rest.
            return await self.update(client, auto_commit=False)
        except IntegrityError:
            raise Conflict("phone", f"a client with phone {phone} already exists") from None

    async def replace_client(self, client_id: int, data: ClientCreate) -> Client:
        full = ClientPatch(
            phone=data.phone,
            timezone=data.timezone,
            operator_code=data.operator_code or _default_operator_code(data.phone),
            tag=data.tag,
        )
        return await self.patch_client(client_id, full)

    async def delete_client(self, client_id: int) -> None:
        await self.get_client(client_id, for_change=True)
        # Its pending messages are cancelled; sent history stays, detached, in the statistics.
        # Its messages are locked in id order first, the order every writer of messages uses.
        session = self.repository.session
        await session.execute(
            select(Message.id).where(Message.client_id == client_id).order_by(Message.id).with_for_update()
        )
        await session.execute(
            update(Message)
            .where(Message.client_id == client_id, Message.status == MessageStatus.PENDING)
            .values(status=MessageStatus.CANCELLED)
        )
        await self.delete(client_id, auto_commit=False)


__all__ = ("ClientRepository", "ClientService")
