"""Headers every answer carries, API, docs and console alike: no content sniffing, and once the
service is reached over HTTPS, Strict-Transport-Security so that browsers never fall back to HTTP."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

HSTS = "max-age=31536000; includeSubDomains"


def security_headers(app: ASGIApp, *, https_only: bool) -> ASGIApp:
    """``https_only``: NOTIFICATION_SECURE_COOKIES, the operator saying browsers use HTTPS only."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        # Behind a trusted proxy, `serve` has already put the browser's scheme here.
        over_https = https_only or scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                headers["x-content-type-options"] = "nosniff"
                if over_https:
                    headers["strict-transport-security"] = HSTS
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


__all__ = ("HSTS", "security_headers")
