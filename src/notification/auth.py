"""Bearer-token access to ``/api/v1``: tokens from ``NOTIFICATION_API_TOKENS``, compared in constant time.
No token configured means every call is refused (fail closed).

Also the roles a person may hold, which the console enforces and single sign-on assigns: here, so
that neither side imports the other."""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

import structlog
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme
from litestar.types import Guard

from notification.security.throttle import client_address, throttle_of

SECURITY_SCHEME_NAME = "BearerToken"
SECURITY_SCHEMES: dict[str, Any] = {
    SECURITY_SCHEME_NAME: SecurityScheme(
        type="http",
        scheme="bearer",
        description="A token of NOTIFICATION_API_TOKENS: `Authorization: Bearer <token>`",
    )
}
SECURITY: list[SecurityRequirement] = [{SECURITY_SCHEME_NAME: []}]
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="notification"'}

logger = structlog.get_logger(__name__)


class Role(enum.StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"


def openapi_components() -> Components:
    return Components(security_schemes=SECURITY_SCHEMES)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def token_accepted(token: str, accepted: Sequence[str]) -> bool:
    """Constant time in the token's content: every configured token is compared, never a shortcut."""
    given = token.encode()
    matched = False
    for candidate in accepted:
        matched |= hmac.compare_digest(given, candidate.encode())
    return matched


def token_actor(token: str) -> str:
    """Who used this token, as the audit log and the console name them: never the token itself."""
    return f"api-token:{hashlib.sha256(token.encode()).hexdigest()[:4]}"


def require_token(accepted_tokens: Sequence[str]) -> Guard:
    accepted = tuple(t for t in accepted_tokens if t)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        token = bearer_token(connection.headers.get("authorization"))
        if token is not None and accepted and token_accepted(token, accepted):
            return
        reason = "no token configured" if not accepted else ("missing token" if token is None else "wrong token")
        throttle = throttle_of(connection)
        if token is not None and throttle is not None:
            # A wrong token is a guess: an address past its allowance waits, and is not counted further.
            address = client_address(connection)
            verdict = await throttle.check(address)
            if not verdict.slowed:
                verdict = await throttle.fail(address)
            if verdict.slowed:
                logger.warning("authentication slowed", reason=reason, client=address, failures=verdict.failures)
                raise TooManyRequestsException(
                    detail="Too many wrong tokens from this address: try again later",
                    headers={"Retry-After": str(verdict.retry_after_s)},
                )
        logger.warning(
            "authentication failed",
            reason=reason,
            method=connection.scope.get("method"),
            path=connection.url.path,
        )
        raise NotAuthorizedException(detail="A valid bearer token is required", headers=CHALLENGE)

    return guard


__all__ = ("SECURITY", "Role", "bearer_token", "openapi_components", "require_token", "token_accepted", "token_actor")
