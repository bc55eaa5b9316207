"""Writing the audit log: an :class:`AuditTrail` names who is making a request's changes and adds
one row per change to the request's own database session, so the row commits with the change or
not at all. Every service method that changes data takes one; a new changing route passes it on
and records its change with one awaited call (``created``, ``updated``, ``deleted`` or ``record``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from notification.audit.models import AuditAction, AuditEntity, AuditEntry, Via
from notification.logging import mask_value

# What a snapshot of an entity leaves out: bookkeeping, not something anyone changes.
BOOKKEEPING_FIELDS = frozenset({"id", "created_at", "updated_at", "status"})


def snapshot(read: msgspec.Struct) -> dict[str, Any]:
    """An entity's audited fields, from its read schema: what the API shows of it, less bookkeeping."""
    values: dict[str, Any] = msgspec.to_builtins(read)
    return {name: value for name, value in values.items() if name not in BOOKKEEPING_FIELDS}


def _stored(value: Any) -> Any:
    return mask_value(msgspec.to_builtins(value))


class AuditTrail:
    def __init__(self, session: AsyncSession, actor: str, via: Via) -> None:
        self.session = session
        self.actor = actor
        self.via = via

    async def record(
        self,
        action: AuditAction,
        entity: AuditEntity,
        entity_id: int | None,
        changes: Mapping[str, tuple[Any, Any]] | None = None,
    ) -> AuditEntry:
        """One row: ``changes`` maps each field to its (old, new) values. Written at once (not
        committed): a row the database refuses fails the request here, while it can still say so,
        rather than at the commit that follows the answer."""
        entry = AuditEntry(
            actor=self.actor,
            via=self.via.value,
            action=action.value,
            entity=entity.value,
            entity_id=entity_id,
            changes={name: {"old": _stored(old), "new": _stored(new)} for name, (old, new) in (changes or {}).items()},
        )
        self.session.add(entry)
        await self.session.flush([entry])
        return entry

    async def created(self, entity: AuditEntity, entity_id: int, fields: Mapping[str, Any]) -> AuditEntry:
        """Its fields with a value (a field left empty is no change)."""
        changes = {name: (None, value) for name, value in fields.items() if value is not None}
        return await self.record(AuditAction.CREATE, entity, entity_id, changes)

    async def updated(
        self, entity: AuditEntity, entity_id: int, before: Mapping[str, Any], after: Mapping[str, Any]
    ) -> AuditEntry:
        """The fields whose value changed; none when the update changed nothing (it is still recorded)."""
        changed = {name: (before.get(name), v) for name, v in after.items() if before.get(name) != v}
        return await self.record(AuditAction.UPDATE, entity, entity_id, changed)

    async def deleted(self, entity: AuditEntity, entity_id: int, fields: Mapping[str, Any]) -> AuditEntry:
        """The values it had, as they were."""
        changes = {name: (value, None) for name, value in fields.items() if value is not None}
        return await self.record(AuditAction.DELETE, entity, entity_id, changes)


__all__ = ("AuditTrail", "snapshot")
