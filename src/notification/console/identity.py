"""Who is signed in to the console: one object in the session, whatever way they signed in.

Signing in with an API token makes an admin identity today; single sign-on will make one from an
ID token. Pages and guards only ever look at the identity: its actor (what an audit line will
name) and its role (what it may do)."""

from __future__ import annotations

import enum
import hashlib
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from notification.console.sessions import renew_session_id
from notification.timezones import is_known_timezone

_IDENTITY = "identity"
_TIMEZONE = "timezone"
DEFAULT_TIMEZONE = "UTC"


class Role(enum.StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"


class Identity(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    actor: str
    """An email, or ``api-token:<first 4 hex digits of the token's sha256>``: never the secret itself."""
    role: Role
    method: str
    """How they signed in: ``token`` (or ``oidc`` once single sign-on exists)."""

    @property
    def can_change(self) -> bool:
        return self.role is Role.ADMIN


def token_identity(token: str) -> Identity:
    return Identity(
        actor=f"api-token:{hashlib.sha256(token.encode()).hexdigest()[:4]}", role=Role.ADMIN, method="token"
    )


def sign_in(connection: ASGIConnection[Any, Any, Any, Any], identity: Identity, timezone: str) -> None:
    renew_session_id(connection)
    connection.set_session(
        {
            _IDENTITY: msgspec.to_builtins(identity),
            _TIMEZONE: timezone if is_known_timezone(timezone) else DEFAULT_TIMEZONE,
        }
    )


def sign_out(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    connection.clear_session()


def current_identity(connection: ASGIConnection[Any, Any, Any, Any]) -> Identity | None:
    raw = connection.session.get(_IDENTITY)
    if raw is None:
        return None
    try:
        return msgspec.convert(raw, Identity)
    except msgspec.ValidationError:
        # A session written by an older release: signing in again is the way out.
        return None


def operator_timezone(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The zone the operator's browser reported at sign-in: pages show times and read forms in it."""
    zone = connection.session.get(_TIMEZONE)
    return zone if isinstance(zone, str) and is_known_timezone(zone) else DEFAULT_TIMEZONE


def require_sign_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if current_identity(connection) is None:
        raise NotAuthorizedException(detail="Sign in to use the console")


def require_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    identity = current_identity(connection)
    if identity is None:
        raise NotAuthorizedException(detail="Sign in to use the console")
    if not identity.can_change:
        raise PermissionDeniedException(detail="Your role may look but not change anything")


__all__ = (
    "Identity",
    "Role",
    "current_identity",
    "operator_timezone",
    "require_admin",
    "require_sign_in",
    "sign_in",
    "sign_out",
    "token_identity",
)
