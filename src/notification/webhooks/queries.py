"""The webhooks package's SQL: the named statements of ``queries.sql``, read once at import."""

from __future__ import annotations

from notification.audit.models import AuditAction, AuditEntity, Via
from notification.lib.sql import Statements, load

queries: Statements = load(__package__, "queries.sql", enums={"action": AuditAction, "entity": AuditEntity, "via": Via})
