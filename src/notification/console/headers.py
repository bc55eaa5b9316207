"""Response headers of every console page and asset: a content security policy that lets the
browser load nothing from another host, no framing, and Secure cookies when served over HTTPS."""

from __future__ import annotations

from collections.abc import Callable, Iterable

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


def _policy_sending_forms_to(origins: Iterable[str]) -> str:
    # Browsers hold a form's redirects to form-action as well: signing in and out with single
    # sign-on sends the browser on to the identity provider.
    extra = " ".join(sorted(set(origins)))
    return (
        CONTENT_SECURITY_POLICY.replace("form-action 'self'", f"form-action 'self' {extra}")
        if extra
        else CONTENT_SECURITY_POLICY
    )


def console_headers(
    app: ASGIApp, form_targets: Callable[[], Iterable[str]] | None = None, *, secure_cookies: bool = False
) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        # Behind a trusted proxy, `serve` takes X-Forwarded-Proto, so the scheme is the browser's;
        # NOTIFICATION_SECURE_COOKIES makes every cookie Secure whatever the scheme looks like.
        over_https = secure_cookies or scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in _FIXED.items():
                    headers[name] = value
                if form_targets is not None:
                    headers["content-security-policy"] = _policy_sending_forms_to(form_targets())
                # Pages show phone numbers and audit lines: no copy kept by the browser or a proxy.
                if "cache-control" not in headers:
                    headers["cache-control"] = "no-store"
                if over_https:
                    cookies = headers.getall("set-cookie", [])
                    if cookies:
                        del headers["set-cookie"]
                        for cookie in cookies:
                            headers.add("set-cookie", cookie if "; secure" in cookie.lower() else f"{cookie}; Secure")
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


def console_headers_sending_forms_to(
    form_targets: Callable[[], Iterable[str]] | None, *, secure_cookies: bool = False
) -> Callable[[ASGIApp], ASGIApp]:
    """The console's headers, its pages' forms allowed to lead to ``form_targets()`` (origins)."""
    return lambda app: console_headers(app, form_targets, secure_cookies=secure_cookies)
