"""Single sign-on: the console sends the browser to the identity provider and takes it back.

A started sign-in (its state, nonce and PKCE verifier) waits in a signed cookie of the browser
that started it, path-scoped to the sign-in routes, so that only that browser can finish it, and
only once: the callback takes it out before anything else. Nothing is stored in the database for
a visitor who has not signed in. Every way the callback can fail shows a page that says what
happened, and leaves nobody signed in who was not before."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from litestar import Controller, Request, get
from litestar.exceptions import NotFoundException
from litestar.params import Parameter
from litestar.response import Redirect, Template
from litestar.status_codes import (
    HTTP_303_SEE_OTHER,
    HTTP_400_BAD_REQUEST,
    HTTP_403_FORBIDDEN,
    HTTP_502_BAD_GATEWAY,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from sqlalchemy.ext.asyncio import AsyncSession

from notification.config import Settings
from notification.console.auth import record_refusal, record_sign_in, safe_next
from notification.console.identity import Identity, sign_in
from notification.console.templating import page
from notification.security.signed import sign, unsign
from notification.sso.access import AccessRules
from notification.sso.provider import PENDING_TTL_S, Failure, OpenIDProvider, PendingSignIn, SignInFailed

CALLBACK_ROUTE = "console-sso-callback"
PENDING_COOKIE = "notification_sso"
_PENDING_PURPOSE = "sso-pending"
_PENDING_PATH = "/admin/sign-in"
# Sign-ins under way in one browser at once (several tabs); the oldest gives way.
MAX_PENDING = 5
MAX_EMAIL_LENGTH = 320
_STATUS = {
    Failure.DENIED: HTTP_403_FORBIDDEN,
    Failure.STATE: HTTP_400_BAD_REQUEST,
    Failure.CODE: HTTP_400_BAD_REQUEST,
    Failure.UNAVAILABLE: HTTP_503_SERVICE_UNAVAILABLE,
    Failure.GARBAGE: HTTP_502_BAD_GATEWAY,
    Failure.UNTRUSTED: HTTP_502_BAD_GATEWAY,
}
# Parameters of a callback are short; anything longer is not from a provider.
CallbackValue = Annotated[str | None, Parameter(max_length=4096)]

logger = structlog.get_logger(__name__)


def _pending_of(request: Request[Any, Any, Any], secret: str) -> dict[str, Any]:
    pending = unsign(secret, _PENDING_PURPOSE, request.cookies.get(PENDING_COOKIE))
    return dict(pending) if isinstance(pending, dict) else {}


def _keeping(response: Template | Redirect, waiting: dict[str, Any], secret: str) -> Template | Redirect:
    """The response, carrying what is still under way (or dropping the cookie when nothing is)."""
    if waiting:
        value = sign(secret, _PENDING_PURPOSE, waiting)
        response.set_cookie(
            PENDING_COOKIE, value, path=_PENDING_PATH, max_age=int(PENDING_TTL_S), httponly=True, samesite="lax"
        )
    else:
        response.delete_cookie(PENDING_COOKIE, path=_PENDING_PATH)
    return response


def callback_uri(request: Request[Any, Any, Any], settings: Settings) -> str:
    """Where the provider sends the browser back: under the configured public address when there
    is one, so that a forged Host header cannot choose it."""
    if settings.public_url:
        return settings.public_url.rstrip("/") + request.app.route_reverse(CALLBACK_ROUTE)
    return str(request.url_for(CALLBACK_ROUTE))


def failure_page(request: Request[Any, Any, Any], title: str, message: str, status_code: int) -> Template:
    return page(request, "sign_in_failed.html", status_code, title=title, message=message)


class SingleSignOnController(Controller):
    path = "/sign-in"

    @get("/sso", name="console-sso-start")
    async def start(
        self,
        request: Request[Any, Any, Any],
        sso_provider: OpenIDProvider | None,
        console_settings: Settings,
        signing_secret: str,
        next_page: Annotated[str | None, Parameter(query="next", max_length=2048)] = None,
        timezone: Annotated[str, Parameter(max_length=64)] = "",
    ) -> Template | Redirect:
        if sso_provider is None:
            raise NotFoundException(detail="Single sign-on is not configured")
        redirect_uri = callback_uri(request, console_settings)
        try:
            target, pending = await sso_provider.begin(redirect_uri, safe_next(next_page), timezone)
        except SignInFailed as exc:
            logger.warning("single sign-on not started", failure=exc.failure.value, reason=exc.detail)
            return failure_page(request, "Cannot sign in now", exc.message, _STATUS[exc.failure])
        waiting = {k: v for k, v in _pending_of(request, signing_secret).items() if isinstance(v, dict)}
        waiting[pending.state] = pending.to_dict()
        for state in sorted(waiting, key=lambda s: waiting[s].get("started_at", 0))[:-MAX_PENDING]:
            del waiting[state]
        return _keeping(Redirect(target, status_code=HTTP_303_SEE_OTHER), waiting, signing_secret)

    @get("/callback", name=CALLBACK_ROUTE)
    async def callback(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        sso_provider: OpenIDProvider | None,
        access_rules: AccessRules,
        console_settings: Settings,
        signing_secret: str,
        code: CallbackValue = None,
        # `state` is a name Litestar keeps for the app's state.
        returned_state: Annotated[str | None, Parameter(query="state", max_length=4096)] = None,
        error: CallbackValue = None,
    ) -> Template | Redirect:
        if sso_provider is None:
            raise NotFoundException(detail="Single sign-on is not configured")
        waiting = _pending_of(request, signing_secret)
        pending = PendingSignIn.from_dict(waiting.pop(returned_state, None)) if returned_state else None
        answer = await self._answer(
            request, db_session, sso_provider, access_rules, console_settings, pending, code, error
        )
        return _keeping(answer, waiting, signing_secret)

    async def _answer(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        sso_provider: OpenIDProvider,
        access_rules: AccessRules,
        settings: Settings,
        pending: PendingSignIn | None,
        code: str | None,
        error: str | None,
    ) -> Template | Redirect:
        try:
            if error is not None:
                declined = Failure.DENIED if error == "access_denied" else Failure.GARBAGE
                raise SignInFailed(declined, f"provider: {error}")
            if pending is None or pending.expired():
                raise SignInFailed(Failure.STATE, "no sign-in under way with this state")
            if not code:
                raise SignInFailed(Failure.GARBAGE, "callback without a code")
            vouched = await sso_provider.finish(pending, code, callback_uri(request, settings))
        except SignInFailed as exc:
            logger.warning("single sign-on failed", failure=exc.failure.value, reason=exc.detail)
            return failure_page(request, "Not signed in", exc.message, _STATUS[exc.failure])

        email = (vouched.email or "").strip().lower()
        refusal = None
        if not email:
            refusal = "The identity provider did not say which email address you signed in with."
        elif len(email) > MAX_EMAIL_LENGTH:
            # No address is this long (RFC 5321), and the audit log holds none longer.
            refusal = "The identity provider gave an email address longer than any address can be."
            email = ""
        elif not vouched.email_verified:
            refusal = f"The identity provider has not verified {email}: verify it there, then sign in again."
        role = access_rules.role_of(email) if refusal is None else None
        if refusal is None and role is None:
            refusal = f"{email} has no access to this console. Ask an administrator to add it."
        if refusal is not None or role is None:
            actor = email or f"oidc:{vouched.subject}"[:MAX_EMAIL_LENGTH]
            await record_refusal(db_session, actor, "oidc", refusal or "")
            logger.warning("console sign-in refused", actor=email, method="oidc", reason=refusal)
            return failure_page(request, "No access", refusal or "", HTTP_403_FORBIDDEN)

        identity = Identity(actor=email, role=role, method="oidc")
        sign_in(request, identity, pending.timezone, id_token=vouched.id_token)
        await record_sign_in(db_session, identity)
        logger.info("console sign-in", actor=identity.actor, method=identity.method, role=role.value)
        return Redirect(pending.next_page, status_code=HTTP_303_SEE_OTHER)
