"""The suppression list's changes, each committed here with its audit record: the API and the console
only call these. Putting a number on the list cancels its pending messages in the same transaction, so
a running batch holding one drops it at its watcher's next look (a quarter of a second), and the claim
checks the list again for what no batch holds yet."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from psycopg import AsyncCursor
from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from notification.audit.models import AuditAction, AuditEntity
from notification.audit.trail import AuditTrail, snapshot
from notification.clients.services import PHONE_LENGTH
from notification.errors import Conflict, InvalidInput, NotFound
from notification.messages.models import ErrorKind
from notification.messages.state import state
from notification.provider.base import SendResult
from notification.suppressions.models import Suppression, SuppressionReason
from notification.suppressions.queries import statements
from notification.suppressions.schemas import SuppressionCreate, SuppressionRead

CSV_COLUMNS = ("phone", "reason", "source", "created_at", "created_by")
"""What an export writes; an import reads phone, reason and source and ignores the other two (the
importer becomes the author, now the time), so an export imports back as it was."""
MAX_IMPORT_ROWS = 100_000
MAX_IMPORT_BYTES = 16 * 2**20


@dataclass(frozen=True, slots=True)
class Imported:
    added: int
    already_listed: int


async def suppress_with_session(
    session: AsyncSession | async_scoped_session[AsyncSession], rows: Sequence[SuppressionCreate], created_by: str
) -> list[str]:
    """Puts the numbers on the list (those already there stay as they were) and cancels their pending
    messages; returns the numbers added. Within the caller's transaction."""
    params = _rows_params(rows, created_by)
    added = [phone for (phone,) in await session.execute(statements.text("suppress"), params)]
    if added:
        await session.execute(state.text("cancel_of_suppressed_phones"), {"phones": added})
    return added


async def suppress_with_cursor(cur: AsyncCursor[Any], rows: Sequence[SuppressionCreate], created_by: str) -> list[str]:
    """The same, over a psycopg connection (the inbound path, in the transaction storing the message)."""
    await cur.execute(statements["suppress"], _rows_params(rows, created_by))
    added = [row[0] if isinstance(row, tuple) else row["phone"] for row in await cur.fetchall()]
    if added:
        await cur.execute(state["cancel_of_suppressed_phones"], {"phones": added})
    return added


ESME_RINVDSTADR = 0x0B
"""SMPP's "invalid destination address": the one permanent answer that says the number does not exist.
An HTTP provider of this service's contract has no such answer (its 4xx say nothing of the number)."""


def means_no_such_number(result: SendResult) -> bool:
    return result.error_kind is ErrorKind.SMPP_STATUS and result.status_code == ESME_RINVDSTADR


def _rows_params(rows: Sequence[SuppressionCreate], created_by: str) -> dict[str, Any]:
    return {
        "phones": [r.phone for r in rows],
        "reasons": [r.reason.value for r in rows],
        "sources": [r.source for r in rows],
        "created_by": created_by,
    }


class SuppressionRepository(SQLAlchemyAsyncRepository[Suppression]):
    model_type = Suppression


class SuppressionService(SQLAlchemyAsyncRepositoryService[Suppression, SuppressionRepository]):
    repository_type = SuppressionRepository
    count_with_window_function = False

    def audited(self, row: Suppression) -> dict[str, Any]:
        return snapshot(self.to_schema(row, schema_type=SuppressionRead))

    async def get_suppression(self, phone: str) -> Suppression:
        row = await self.get_one_or_none(phone=phone)
        if row is None:
            raise NotFound("suppression of phone", int(phone) if phone.isdigit() else 0)
        return row

    async def list_suppressions(
        self, page: LimitOffset, reason: SuppressionReason | None = None, phone_prefix: str | None = None
    ) -> tuple[Sequence[Suppression], int]:
        conditions: list[ColumnElement[bool]] = []
        if reason is not None:
            conditions.append(Suppression.reason == reason.value)
        if phone_prefix:
            padding = PHONE_LENGTH - len(phone_prefix)
            conditions.append(Suppression.phone.between(phone_prefix + "0" * padding, phone_prefix + "9" * padding))
        return await self.list_and_count(page, OrderBy("created_at", "desc"), *conditions)

    async def add_suppression(self, data: SuppressionCreate, audit: AuditTrail) -> Suppression:
        session = self.repository.session
        if not await suppress_with_session(session, [data], audit.actor):
            raise Conflict("phone", f"phone {data.phone} is already on the suppression list")
        row = await self.get_suppression(data.phone)
        await audit.created(AuditEntity.SUPPRESSION, int(data.phone), self.audited(row))
        await session.commit()
        return row

    async def import_suppressions(self, rows: Sequence[SuppressionCreate], audit: AuditTrail) -> Imported:
        """Every row or none (a bad one refuses the file); numbers already listed are left as they were."""
        session = self.repository.session
        added = await suppress_with_session(session, rows, audit.actor)
        await audit.record(
            AuditAction.IMPORT,
            AuditEntity.SUPPRESSION,
            None,
            {"added": (None, len(added)), "already_listed": (None, len(rows) - len(added))},
        )
        await session.commit()
        return Imported(len(added), len(rows) - len(added))

    async def delete_suppression(self, phone: str, audit: AuditTrail) -> None:
        """Mailings may reach the number again; what was cancelled stays cancelled (a re-plan of a
        running mailing plans it again)."""
        row = await self.get_suppression(phone)
        await audit.deleted(AuditEntity.SUPPRESSION, int(phone), self.audited(row))
        await self.delete(phone, auto_commit=False, id_attribute="phone")
        await self.repository.session.commit()

    async def export_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in await self.repository.session.execute(statements.text("export")):
            writer.writerow([row.phone, row.reason, row.source, row.created_at.isoformat(), row.created_by])
        return out.getvalue()


CSV_RULE = "must be a CSV of suppressions"
"""What every refusal of an import says first (the operation's description states it)."""


def read_suppressions_csv(data: bytes) -> list[SuppressionCreate]:
    try:
        return _read_suppressions_csv(data)
    except InvalidInput as exc:
        raise InvalidInput([(field, f"{CSV_RULE}: {message}") for field, message in exc.errors]) from None


def _read_suppressions_csv(data: bytes) -> list[SuppressionCreate]:
    """A file of suppressions: a header naming at least ``phone`` (``reason`` defaults to
    operator_request, ``source`` to empty), one number a line. Each error names its line."""
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidInput.of("file", f"larger than {MAX_IMPORT_BYTES // 2**20} MiB: import it in parts")
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput.of("file", "not UTF-8 text") from None
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = [name.strip().lower() for name in next(reader, [])]
        if "phone" not in header:
            raise InvalidInput.of("file", "the header must name a phone column (and may name reason and source)")
        unknown = sorted(set(header) - set(CSV_COLUMNS))
        if unknown:
            raise InvalidInput.of("file", f"unknown columns {unknown}: the columns are {', '.join(CSV_COLUMNS)}")
        rows: list[dict[str, str]] = []
        lines: list[int] = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise InvalidInput.of(
                    f"line {reader.line_num}", f"{len(values)} values where the header names {len(header)}"
                )
            if len(rows) == MAX_IMPORT_ROWS:
                raise InvalidInput.of("file", f"more than {MAX_IMPORT_ROWS:,} numbers: import it in parts")
            row = {name: value.strip() for name, value in zip(header, values, strict=True)}
            rows.append(
                {
                    "phone": row["phone"],
                    "reason": row.get("reason") or SuppressionReason.OPERATOR_REQUEST.value,
                    "source": row.get("source", ""),
                }
            )
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise InvalidInput.of(f"line {reader.line_num}", f"not a readable CSV line: {exc}") from None
    if not rows:
        raise InvalidInput.of("file", "no numbers: a header, then one number a line")
    return _parsed(rows, lines)


def _parsed(rows: list[dict[str, str]], lines: list[int]) -> list[SuppressionCreate]:
    seen: dict[str, int] = {}
    parsed: list[SuppressionCreate] = []
    for row, line in zip(rows, lines, strict=True):
        try:
            parsed.append(msgspec.convert(row, SuppressionCreate))
        except msgspec.ValidationError as exc:
            raise InvalidInput.of(f"line {line}", str(exc)) from None
        if (first := seen.setdefault(row["phone"], line)) != line:
            raise InvalidInput.of(f"line {line}", f"phone {row['phone']} repeats line {first}")
    return parsed
