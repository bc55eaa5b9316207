"""The audit log's dependencies: the service that reads it, and the trail of the API's requests."""

from __future__ import annotations

from typing import Any

from advanced_alchemy.extensions.litestar.providers import create_service_provider
from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from notification.audit.models import Via
from notification.audit.services import AuditService
from notification.audit.trail import AuditTrail
from notification.auth import bearer_token, token_actor

provide_audit_service = create_service_provider(AuditService)


def provide_api_audit_trail(request: Request[Any, Any, Any], db_session: AsyncSession) -> AuditTrail:
    """The API's guard has accepted the request's token by now: it names the actor."""
    token = bearer_token(request.headers.get("authorization")) or ""
    return AuditTrail(db_session, token_actor(token), Via.API)


__all__ = ("provide_api_audit_trail", "provide_audit_service")
