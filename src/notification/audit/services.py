from __future__ import annotations

from collections.abc import Sequence

from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService

from notification.audit.models import AuditEntity, AuditEntry


class AuditRepository(SQLAlchemyAsyncRepository[AuditEntry]):
    model_type = AuditEntry


class AuditService(SQLAlchemyAsyncRepositoryService[AuditEntry, AuditRepository]):
    repository_type = AuditRepository
    # A window-function count says 0 for a page past the end; totals must count every row.
    count_with_window_function = False

    async def list_entries(
        self,
        page: LimitOffset,
        actor: str | None = None,
        entity: AuditEntity | None = None,
        entity_id: int | None = None,
    ) -> tuple[Sequence[AuditEntry], int]:
        """Newest first, each filter an equality that one of the table's indexes leads with."""
        conditions = []
        if actor is not None:
            conditions.append(AuditEntry.actor == actor)
        if entity is not None:
            conditions.append(AuditEntry.entity == entity.value)
        if entity_id is not None:
            conditions.append(AuditEntry.entity_id == entity_id)
        return await self.list_and_count(page, OrderBy("id", "desc"), *conditions)


__all__ = ("AuditService",)
