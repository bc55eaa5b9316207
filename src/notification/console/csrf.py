"""CSRF protection bound to the session, and an Origin check.

Litestar's double-submit cookie alone lets a cookie planted in the victim's browser (from a sibling
subdomain, or a network attacker over plain HTTP) pass together with its token. Here a signed-in
session holds a random key of its own, and the tokens it accepts are signed with that key as well
as the console secret: a token minted for any other session, or for nobody, is refused. Every
state-changing request must also come from a page of this service when the browser says where it
comes from (Origin, or Sec-Fetch-Site)."""

from __future__ import annotations

import secrets
from secrets import compare_digest
from typing import Any
from urllib.parse import urlsplit

from litestar.config.csrf import CSRFConfig
from litestar.connection import Request
from litestar.enums import RequestEncodingType, ScopeType
from litestar.exceptions import PermissionDeniedException
from litestar.middleware._utils import should_bypass_middleware
from litestar.middleware.csrf import CSRF_SECRET_LENGTH, CSRFMiddleware, generate_csrf_hash, generate_csrf_token
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

# The session's own CSRF key; set at sign-in (identity.py), so a new session means new tokens.
CSRF_KEY = "csrf_key"


def new_csrf_key() -> str:
    return secrets.token_hex(16)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class SessionBoundCSRFMiddleware(CSRFMiddleware):
    def __init__(self, app: ASGIApp, config: CSRFConfig, public_url: str = "") -> None:
        super().__init__(app, config)
        self.public_origin = _origin(public_url) if public_url else None

    def _secret_of(self, scope: Scope) -> str:
        session = scope.get("session")
        key = session.get(CSRF_KEY) if isinstance(session, dict) else None
        return f"{self.config.secret}:{key}" if isinstance(key, str) and key else self.config.secret

    @staticmethod
    def _valid(token: str, secret: str) -> str | None:
        if len(token) < CSRF_SECRET_LENGTH + 1:
            return None
        random, signature = token[:CSRF_SECRET_LENGTH], token[CSRF_SECRET_LENGTH:]
        return random if compare_digest(signature, generate_csrf_hash(token=random, secret=secret)) else None

    def _same_origin(self, request: Request[Any, Any, Any]) -> bool:
        origin = request.headers.get("origin")
        if origin is None:
            # Older browsers send no Origin on same-origin posts; they do say cross-site requests.
            return request.headers.get("sec-fetch-site", "same-origin") in {"same-origin", "none"}
        own = {_origin(str(request.base_url))}
        if self.public_origin:
            own.add(self.public_origin)
        return origin.lower() in own

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or should_bypass_middleware(
            scope=scope,
            scopes=self.scopes,
            exclude_opt_key=self.config.exclude_from_csrf_key,
            exclude_path_pattern=self.exclude,
        ):
            await self.app(scope, receive, send)
            return
        request: Request[Any, Any, Any] = scope["litestar_app"].request_class(scope=scope, receive=receive)
        secret = self._secret_of(scope)
        cookie = request.cookies.get(self.config.cookie_name)
        state = ScopeState.from_scope(scope)
        if request.method in self.config.safe_methods:
            # A cookie from another session (or planted) is replaced, never reused for this one.
            keep = cookie is not None and self._valid(cookie, secret) is not None
            token = state.csrf_token = cookie if keep and cookie else generate_csrf_token(secret=secret)
            wrapped = self.create_send_wrapper(send=send, csrf_cookie=cookie if keep else None, token=token)
            await self.app(scope, receive, wrapped)
            return
        if not self._same_origin(request):
            raise PermissionDeniedException("Cross-origin request refused")
        sent = request.headers.get(self.config.header_name)
        content_type, _ = request.content_type
        if not sent and content_type in {RequestEncodingType.URL_ENCODED, RequestEncodingType.MULTI_PART}:
            value = (await request.form()).get("_csrf_token")
            sent = value if isinstance(value, str) else None
        from_form = self._valid(sent, secret) if sent else None
        from_cookie = self._valid(cookie, secret) if cookie else None
        if from_form is None or from_cookie is None or not compare_digest(from_form, from_cookie):
            raise PermissionDeniedException("CSRF token verification failed")
        state.csrf_token = sent or ""
        await self.app(scope, receive, send)


__all__ = ("CSRF_KEY", "SessionBoundCSRFMiddleware", "new_csrf_key")
