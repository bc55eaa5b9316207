"""Signing in to the console with one of the API tokens, and signing out."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, Parameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_400_BAD_REQUEST

from notification.auth import token_accepted
from notification.config import Settings
from notification.console.identity import current_identity, sign_in, sign_out, token_identity
from notification.console.templating import page

HOME = "/admin"

logger = structlog.get_logger(__name__)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console page only, never another site."""
    if not target or not target.startswith(HOME) or target.startswith("//") or "\\" in target:
        return HOME
    return target


def _refusal(token: str, accepted: tuple[str, ...]) -> str | None:
    """Why this token does not sign anyone in, or None when it does."""
    if not token:
        return "Paste a token to sign in."
    if not accepted:
        return "No token is configured: set NOTIFICATION_API_TOKENS and restart the service."
    if not token_accepted(token, accepted):
        return "This token is not accepted."
    return None


class SignInController(Controller):
    path = "/"

    @get("/sign-in")
    async def sign_in_page(
        self, request: Request[Any, Any, Any], next_page: Annotated[str | None, Parameter(query="next")] = None
    ) -> Template | Redirect:
        if current_identity(request) is not None:
            return Redirect(safe_next(next_page), status_code=HTTP_303_SEE_OTHER)
        return page(request, "sign_in.html", next_page=safe_next(next_page), error=None)

    @post("/sign-in")
    async def sign_in(
        self,
        request: Request[Any, Any, Any],
        console_settings: Settings,
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template | Redirect:
        token = data.get("token", "").strip()
        next_page = safe_next(data.get("next"))
        refusal = _refusal(token, tuple(t for t in console_settings.api_tokens if t))
        if refusal is not None:
            logger.warning("console sign-in refused", reason=refusal)
            return page(request, "sign_in.html", HTTP_400_BAD_REQUEST, next_page=next_page, error=refusal)
        identity = token_identity(token)
        sign_in(request, identity, data.get("timezone", ""))
        logger.info("console sign-in", actor=identity.actor, method=identity.method)
        return Redirect(next_page, status_code=HTTP_303_SEE_OTHER)

    @post("/sign-out")
    async def sign_out(self, request: Request[Any, Any, Any]) -> Redirect:
        identity = current_identity(request)
        if identity is not None:
            logger.info("console sign-out", actor=identity.actor)
        sign_out(request)
        return Redirect(f"{HOME}/sign-in", status_code=HTTP_303_SEE_OTHER)


class UnknownPageController(Controller):
    """Any other address under /admin: the console's own "not found" page, not an API problem document."""

    path = "/"

    @get("/{rest:path}", include_in_schema=False)
    async def unknown(self, rest: str) -> None:
        raise NotFoundException(detail=f"No page at /admin{rest}")
