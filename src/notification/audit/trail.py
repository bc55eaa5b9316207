"""Writing the audit log: an :class:`AuditTrail` names who is making a request's changes and adds
one row per change to the request's own database session, so the row commits with the change or
not at all. Every service method that changes data takes one; a new changing route passes it on
and records its change with one call (``created``, ``updated``, ``deleted`` or ``record``)."""

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

    def record(
        self,
        action: AuditAction,
        entity: AuditEntity,
        entity_id: int | None,
        changes: Mapping[str, tuple[Any, Any]] | None = None,
    ) -> AuditEntry:
        """One row: ``changes`` maps each field to its (old, new) values."""
        entry = AuditEntry(
            actor=self.actor,
            via=self.via.value,
            action=action.value,
            entity=entity.value,
            entity_id=entity_id,
            changes={name: {"old": _stored(old), "new": _stored(new)} for name, (old, new) in (changes or {}).items()},
        )
        self.session.add(entry)
        return entry

    def created(self, entity: AuditEntity, entity_id: int, fields: Mapping[str, Any]) -> AuditEntry:
        return self.record(AuditAction.CREATE, entity, entity_id, {name: (None, v) for name, v in fields.items()})

    def updated(
        self, entity: AuditEntity, entity_id: int, before: Mapping[str, Any], after: Mapping[str, Any]
    ) -> AuditEntry:
        """The fields whose value changed; none when the update changed nothing (it is still recorded)."""
        changed = {name: (before.get(name), v) for name, v in after.items() if before.get(name) != v}
        return self.record(AuditAction.UPDATE, entity, entity_id, changed)

    def deleted(self, entity: AuditEntity, entity_id: int, fields: Mapping[str, Any]) -> AuditEntry:
        return self.record(AuditAction.DELETE, entity, entity_id, {name: (v, None) for name, v in fields.items()})


__all__ = ("AuditTrail", "snapshot")
