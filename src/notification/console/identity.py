"""Who is signed in to the console: one object in the session, whatever way they signed in.

Signing in with an API token makes an admin identity; single sign-on makes one from a verified
ID token, its role from the configured addresses. Pages and guards only ever look at the
identity: its actor (what an audit line names) and its role (what it may do)."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from notification.auth import Role, token_actor
from notification.console.csrf import CSRF_KEY, new_csrf_key
from notification.console.sessions import renew_session_id
from notification.sso.access import AccessRules
from notification.timezones import is_known_timezone

if TYPE_CHECKING:
    from notification.config import Settings

_IDENTITY = "identity"
_TIMEZONE = "timezone"
# The ID token of a single sign-on: the provider asks for it back when the session ends there too.
_ID_TOKEN = "id_token"  # noqa: S105  (the name of a session key, not a secret)
# When the session was signed in to (epoch seconds), for its absolute lifetime.
_SIGNED_IN_AT = "signed_in_at"
# The sha256 of the API token that signed the session in: checked against the current tokens on
# every request, so removing a token from the settings ends its sessions too.
_CREDENTIAL = "credential"
DEFAULT_TIMEZONE = "UTC"


class Identity(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    actor: str
    """An email, or ``api-token:<first 4 hex digits of the token's sha256>``: never the secret itself."""
    role: Role
    method: str
    """How they signed in: ``token`` or ``oidc`` (single sign-on)."""

    @property
    def can_change(self) -> bool:
        return self.role is Role.ADMIN


def token_identity(token: str) -> Identity:
    return Identity(actor=token_actor(token), role=Role.ADMIN, method="token")


def credential_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign_in(
    connection: ASGIConnection[Any, Any, Any, Any],
    identity: Identity,
    timezone: str,
    id_token: str | None = None,
    token: str | None = None,
) -> None:
    """A new session, under a new id: whatever the old one held (a sign-in under way) goes with it."""
    renew_session_id(connection)
    session: dict[str, Any] = {
        _IDENTITY: msgspec.to_builtins(identity),
        _TIMEZONE: timezone if is_known_timezone(timezone) else DEFAULT_TIMEZONE,
        _SIGNED_IN_AT: time.time(),
        CSRF_KEY: new_csrf_key(),
    }
    if id_token is not None:
        session[_ID_TOKEN] = id_token
    if token is not None:
        session[_CREDENTIAL] = credential_digest(token)
    connection.set_session(session)


def _session(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
    """The session's content; empty once cleared in this request."""
    session = connection.scope.get("session")
    return session if isinstance(session, dict) else {}


def id_token_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    token = _session(connection).get(_ID_TOKEN)
    return token if isinstance(token, str) else None


def sign_out(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    connection.clear_session()


def current_identity(connection: ASGIConnection[Any, Any, Any, Any]) -> Identity | None:
    session = _session(connection)
    raw = session.get(_IDENTITY)
    if raw is None:
        return None
    try:
        identity = msgspec.convert(raw, Identity)
    except msgspec.ValidationError:
        # A session written by an older release: signing in again is the way out.
        return None
    settings: Settings | None = connection.app.state.get("settings")
    still = _still_valid(session, identity, settings) if settings is not None else None
    if still is None:
        # Expired or revoked: the row goes at the end of this request, the browser signs in again.
        connection.clear_session()
    return still


def _still_valid(session: dict[str, Any], identity: Identity, settings: Settings) -> Identity | None:
    """The identity as today's settings see it: None once the session is too old, or what signed
    it in (a token, an address) is no longer accepted; a changed role takes effect at once."""
    signed_in_at = session.get(_SIGNED_IN_AT)
    if not isinstance(signed_in_at, int | float) or time.time() - signed_in_at > settings.session_max_age_s:
        return None
    if identity.method == "token":
        digest = session.get(_CREDENTIAL)
        if not isinstance(digest, str) or not settings.token_sign_in:
            return None
        current = [credential_digest(token) for token in settings.api_tokens if token]
        matched = False
        for candidate in current:
            matched |= hmac.compare_digest(digest, candidate)
        return identity if matched else None
    if identity.method == "oidc":
        role = AccessRules(settings.admin_emails, settings.viewer_emails).role_of(identity.actor)
        if role is None or not settings.oidc_issuer:
            return None
        return identity if role is identity.role else msgspec.structs.replace(identity, role=role)
    return None


def operator_timezone(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The zone the operator's browser reported at sign-in: pages show times and read forms in it."""
    zone = _session(connection).get(_TIMEZONE)
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
    "current_identity",
    "id_token_of",
    "operator_timezone",
    "require_admin",
    "require_sign_in",
    "sign_in",
    "sign_out",
    "token_identity",
)
