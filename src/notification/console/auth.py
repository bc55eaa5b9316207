"""Signing in to the console, with single sign-on (see sso.py) or, where it is allowed, one of the
API tokens; and signing out. Each sign-in, refusal and sign-out is written to the audit log."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from litestar.status_codes import (
    HTTP_303_SEE_OTHER,
    HTTP_400_BAD_REQUEST,
    HTTP_403_FORBIDDEN,
    HTTP_429_TOO_MANY_REQUESTS,
)
from sqlalchemy.ext.asyncio import AsyncSession

from notification.audit.models import AuditAction, AuditEntity, Via
from notification.audit.trail import AuditTrail
from notification.auth import token_accepted, token_actor
from notification.config import Settings
from notification.console.identity import (
    Identity,
    current_identity,
    id_token_of,
    sign_in,
    sign_out,
    token_identity,
)
from notification.console.templating import page
from notification.security.throttle import client_address, throttle_of
from notification.sso.provider import OpenIDProvider

HOME = "/admin"
SIGN_IN_PAGE = f"{HOME}/sign-in"

logger = structlog.get_logger(__name__)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console page only, never another site."""
    if not target or not target.startswith(HOME) or target.startswith("//") or "\\" in target:
        return HOME
    return target


async def record_sign_in(db_session: AsyncSession, identity: Identity) -> None:
    """The sign-in, committed now: the answer is a redirect, which the request's own commit skips."""
    changes = {"role": (None, identity.role.value), "method": (None, identity.method)}
    await AuditTrail(db_session, identity.actor, Via.CONSOLE).record(
        AuditAction.SIGN_IN, AuditEntity.SESSION, None, changes
    )
    await db_session.commit()


async def record_refusal(db_session: AsyncSession, actor: str, method: str, reason: str) -> None:
    """A refused sign-in, committed now: the page that says so is no success either."""
    changes = {"method": (None, method), "reason": (None, reason)}
    trail = AuditTrail(db_session, actor, Via.CONSOLE)
    await trail.record(AuditAction.SIGN_IN_REFUSED, AuditEntity.SESSION, None, changes)
    await db_session.commit()


def _refusal(token: str, accepted: tuple[str, ...]) -> str | None:
    """Why this token does not sign anyone in, or None when it does."""
    if not token:
        return "Paste a token to sign in."
    if not accepted:
        return "No token is configured: set NOTIFICATION_API_TOKENS and restart the service."
    if not token_accepted(token, accepted):
        return "This token is not accepted."
    return None


def _slowed(retry_after_s: int) -> str:
    minutes = max(1, -(-retry_after_s // 60))
    return f"Too many failed sign-ins from your address: try again in {minutes} minute{'s' if minutes > 1 else ''}."


def sign_in_page(
    request: Request[Any, Any, Any],
    settings: Settings,
    next_page: str,
    error: str | None = None,
    status_code: int = 200,
) -> Template:
    return page(
        request,
        "sign_in.html",
        status_code,
        next_page=next_page,
        error=error,
        sso=bool(settings.oidc_issuer),
        token_sign_in=settings.token_sign_in,
    )


class SignInController(Controller):
    path = "/"

    @get("/sign-in")
    async def sign_in_form(
        self,
        request: Request[Any, Any, Any],
        console_settings: Settings,
        next_page: Annotated[str | None, Parameter(query="next")] = None,
    ) -> Template | Redirect:
        if current_identity(request) is not None:
            return Redirect(safe_next(next_page), status_code=HTTP_303_SEE_OTHER)
        return sign_in_page(request, console_settings, safe_next(next_page))

    @post("/sign-in")
    async def sign_in(
        self,
        request: Request[Any, Any, Any],
        console_settings: Settings,
        db_session: AsyncSession,
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template | Redirect:
        token = data.get("token", "").strip()
        next_page = safe_next(data.get("next"))
        if not console_settings.token_sign_in:
            turned_off = "Signing in with an API token is turned off here: use single sign-on."
            if token:
                await record_refusal(db_session, token_actor(token), "token", "token sign-in is turned off")
            logger.warning("console sign-in refused", reason=turned_off)
            return sign_in_page(request, console_settings, next_page, turned_off, HTTP_403_FORBIDDEN)
        throttle, address = throttle_of(request), client_address(request)
        if token and throttle is not None and (waiting := await throttle.check(address)).slowed:
            # Past the allowance the token is not even compared, nor the attempt audited.
            logger.warning("console sign-in slowed", client=address, failures=waiting.failures)
            slowed = sign_in_page(
                request, console_settings, next_page, _slowed(waiting.retry_after_s), HTTP_429_TOO_MANY_REQUESTS
            )
            slowed.headers["Retry-After"] = str(waiting.retry_after_s)
            return slowed
        refusal = _refusal(token, tuple(t for t in console_settings.api_tokens if t))
        if refusal is not None:
            if token:
                if throttle is not None:
                    await throttle.fail(address)
                await record_refusal(db_session, token_actor(token), "token", refusal)
            logger.warning("console sign-in refused", reason=refusal, client=address)
            return sign_in_page(request, console_settings, next_page, refusal, HTTP_400_BAD_REQUEST)
        identity = token_identity(token)
        sign_in(request, identity, data.get("timezone", ""), token=token)
        await record_sign_in(db_session, identity)
        logger.info("console sign-in", actor=identity.actor, method=identity.method)
        return Redirect(next_page, status_code=HTTP_303_SEE_OTHER)

    @post("/sign-out")
    async def sign_out(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, sso_provider: OpenIDProvider | None
    ) -> Redirect:
        identity = current_identity(request)
        id_token = id_token_of(request)
        sign_out(request)
        if identity is None:
            return Redirect(SIGN_IN_PAGE, status_code=HTTP_303_SEE_OTHER)
        await AuditTrail(db_session, identity.actor, Via.CONSOLE).record(
            AuditAction.SIGN_OUT, AuditEntity.SESSION, None, {"method": (identity.method, None)}
        )
        await db_session.commit()
        logger.info("console sign-out", actor=identity.actor)
        if identity.method == "oidc" and sso_provider is not None:
            # The provider's own session ends too, when it offers a way; it sends the browser back here.
            after = str(request.base_url).rstrip("/") + SIGN_IN_PAGE
            elsewhere = await sso_provider.end_session_url(id_token, after)
            if elsewhere is not None:
                return Redirect(elsewhere, status_code=HTTP_303_SEE_OTHER)
        return Redirect(SIGN_IN_PAGE, status_code=HTTP_303_SEE_OTHER)


class UnknownPageController(Controller):
    """Any other address under /admin: the console's own "not found" page, not an API problem document."""

    path = "/"

    @get("/{rest:path}", include_in_schema=False)
    async def unknown(self, rest: str) -> None:
        raise NotFoundException(detail=f"No page at /admin{rest}")
