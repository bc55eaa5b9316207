from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from advanced_alchemy.mixins import IdentityPrimaryKey
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from notification.db import Base, utcnow


class AuditAction(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    IMPORT = "import"
    PAUSE = "pause"
    RESUME = "resume"
    RETRY = "retry"
    TEST_SEND = "test send"
    SIGN_IN = "sign-in"
    SIGN_OUT = "sign-out"
    SIGN_IN_REFUSED = "sign-in refused"
    ROTATE_SECRET = "rotate secret"  # noqa: S105  (an action's name, not a secret)
    DISABLE = "disable"
    """A worker turned something off by itself (a webhook endpoint failing for too long)."""


class AuditEntity(enum.StrEnum):
    CLIENT = "client"
    MAILING = "mailing"
    SESSION = "session"
    """A console session: sign-ins, sign-outs and refusals."""
    AUDIENCE = "audience"
    SCHEDULE = "schedule"
    OPERATOR_CODE = "operator code"
    """The name of an operator code; the entity id is the code as a number."""
    PROVIDER = "provider"
    ROUTES = "routes"
    """The ordered routes, replaced as a whole."""
    WEBHOOK = "webhook"
    SUPPRESSION = "suppression"
    """A number on the suppression list; the entity id is the phone as a number."""


class Via(enum.StrEnum):
    API = "api"
    CONSOLE = "console"
    WORKER = "worker"
    """Changes a worker makes by itself, such as the mailings of a schedule's occurrences."""


class AuditEntry(IdentityPrimaryKey, Base):
    """One change, or one sign-in event. Actions and entities are plain text, not a database enum:
    a new kind of change is a new name in the enums above, not a migration."""

    __tablename__ = "audit_log"
    __table_args__ = (
        # One per filter of the console and the API, each read newest first.
        Index("ix_audit_log_actor_id", "actor", "id"),
        Index("ix_audit_log_entity_id", "entity", "id"),
        Index("ix_audit_log_entity_id_id", "entity_id", "id"),
    )

    at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow, server_default=func.now())
    actor: Mapped[str] = mapped_column(String(320))
    """An email, or ``api-token:<first 4 hex digits of the token's sha256>``."""
    via: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    """``{field: {"old": ..., "new": ...}}``, phone numbers masked as in the logs."""


__all__ = ("AuditAction", "AuditEntity", "AuditEntry", "Via")
