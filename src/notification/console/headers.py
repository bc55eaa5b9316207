"""Response headers of every console page and asset: a content security policy that lets the
browser load nothing from another host, no framing, and Secure cookies when served over HTTPS."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import ASGIApp, Message, Receive, Scope, Send

# Scripts, styles, images and requests: this origin only. The pages carry no inline script or
# style (htmx's own indicator style is turned off in the base template).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)
_FIXED = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


def console_headers(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        # Behind a proxy, `serve` trusts X-Forwarded-Proto, so the scheme is the browser's.
        over_https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in _FIXED.items():
                    headers[name] = value
                if over_https:
                    cookies = headers.getall("set-cookie", [])
                    if cookies:
                        del headers["set-cookie"]
                        for cookie in cookies:
                            headers.add("set-cookie", cookie if "; secure" in cookie.lower() else f"{cookie}; Secure")
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware
