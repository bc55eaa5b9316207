"""Per-request log context: a request id for every call, the ids of its path, one access line each."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_HEADER_KEY = REQUEST_ID_HEADER.lower().encode()
# An incoming id is reused only when it cannot forge a log line or blow up a field.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
# Path parameters that name a domain object, bound under the name every log line uses.
_PATH_IDS = ("mailing_id", "client_id", "message_id")

logger = structlog.get_logger("notification.access")


def request_id_from(scope: Scope) -> str:
    for key, value in scope.get("headers", ()):
        if key == _REQUEST_ID_HEADER_KEY:
            candidate = value.decode("latin-1").strip()
            if _SANE_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class RequestContext:
    """Outermost ASGI layer: binds ``request_id``, answers it in ``X-Request-ID`` and logs
    "request handled" once per request, unknown paths and errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        structlog.contextvars.clear_contextvars()
        request_id = request_id_from(scope)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        header = (_REQUEST_ID_HEADER_KEY, request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", ()) if h[0].lower() != _REQUEST_ID_HEADER_KEY]
                message["headers"] = [*headers, header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logger.info(
                "request handled",
                method=scope.get("method"),
                path=scope.get("path"),
                # Behind a trusted proxy, the address it forwarded: the client, not the ingress.
                client=(scope.get("client") or ("",))[0],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            structlog.contextvars.clear_contextvars()


def bind_path_ids(app: ASGIApp) -> ASGIApp:
    """Route middleware: binds ``mailing_id``/``client_id``/``message_id`` of the matched path, so every
    line of the request (and its access line) carries them."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        params: dict[str, Any] = scope.get("path_params") or {}
        ids = {name: params[name] for name in _PATH_IDS if name in params}
        if ids:
            structlog.contextvars.bind_contextvars(**ids)
        await app(scope, receive, send)

    return middleware


def bind_ids(**ids: int | None) -> None:
    """Bind the given ids (those not None) for the rest of the request."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in ids.items() if v is not None})


__all__ = ("REQUEST_ID_HEADER", "RequestContext", "bind_ids", "bind_path_ids")
