"""Single sign-on: the console sends the browser to the identity provider and takes it back.

A started sign-in (its state, nonce and PKCE verifier) waits in the browser's server-side
session, so that only the browser that started it can finish it, and only once: the callback
takes it out before anything else. Every way the callback can fail shows a page that says what
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

from notification.console.auth import record_refusal, record_sign_in, safe_next
from notification.console.identity import Identity, current_identity, sign_in
from notification.console.templating import page
from notification.sso.access import AccessRules
from notification.sso.provider import Failure, OpenIDProvider, PendingSignIn, SignInFailed

CALLBACK_ROUTE = "console-sso-callback"
_PENDING = "sign_in_pending"
# Sign-ins under way in one browser at once (several tabs); the oldest gives way.
MAX_PENDING = 5
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


def _pending_of(request: Request[Any, Any, Any]) -> dict[str, Any]:
    pending = request.session.get(_PENDING)
    return dict(pending) if isinstance(pending, dict) else {}


def _take_pending(request: Request[Any, Any, Any], state: str | None) -> PendingSignIn | None:
    """The sign-in this state belongs to, out of the session for good; None when there is none."""
    waiting = _pending_of(request)
    found = PendingSignIn.from_dict(waiting.pop(state, None)) if state else None
    if waiting:
        request.session[_PENDING] = waiting
    elif current_identity(request) is None:
        # Nothing left to keep for a visitor who is not signed in: no session row either.
        request.clear_session()
    else:
        request.session.pop(_PENDING, None)
    return found


def failure_page(request: Request[Any, Any, Any], title: str, message: str, status_code: int) -> Template:
    return page(request, "sign_in_failed.html", status_code, title=title, message=message)


class SingleSignOnController(Controller):
    path = "/sign-in"

    @get("/sso", name="console-sso-start")
    async def start(
        self,
        request: Request[Any, Any, Any],
        sso_provider: OpenIDProvider | None,
        next_page: Annotated[str | None, Parameter(query="next", max_length=2048)] = None,
        timezone: Annotated[str, Parameter(max_length=64)] = "",
    ) -> Template | Redirect:
        if sso_provider is None:
            raise NotFoundException(detail="Single sign-on is not configured")
        redirect_uri = str(request.url_for(CALLBACK_ROUTE))
        try:
            target, pending = await sso_provider.begin(redirect_uri, safe_next(next_page), timezone)
        except SignInFailed as exc:
            logger.warning("single sign-on not started", failure=exc.failure.value, reason=exc.detail)
            return failure_page(request, "Cannot sign in now", exc.message, _STATUS[exc.failure])
        waiting = _pending_of(request)
        waiting[pending.state] = pending.to_dict()
        for state in sorted(waiting, key=lambda s: waiting[s].get("started_at", 0))[:-MAX_PENDING]:
            del waiting[state]
        request.session[_PENDING] = waiting
        return Redirect(target, status_code=HTTP_303_SEE_OTHER)

    @get("/callback", name=CALLBACK_ROUTE)
    async def callback(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        sso_provider: OpenIDProvider | None,
        access_rules: AccessRules,
        code: CallbackValue = None,
        # `state` is a name Litestar keeps for the app's state.
        returned_state: Annotated[str | None, Parameter(query="state", max_length=4096)] = None,
        error: CallbackValue = None,
    ) -> Template | Redirect:
        if sso_provider is None:
            raise NotFoundException(detail="Single sign-on is not configured")
        pending = _take_pending(request, returned_state)
        try:
            if error is not None:
                declined = Failure.DENIED if error == "access_denied" else Failure.GARBAGE
                raise SignInFailed(declined, f"provider: {error}")
            if pending is None or pending.expired():
                raise SignInFailed(Failure.STATE, "no sign-in under way with this state")
            if not code:
                raise SignInFailed(Failure.GARBAGE, "callback without a code")
            vouched = await sso_provider.finish(pending, code, str(request.url_for(CALLBACK_ROUTE)))
        except SignInFailed as exc:
            logger.warning("single sign-on failed", failure=exc.failure.value, reason=exc.detail)
            return failure_page(request, "Not signed in", exc.message, _STATUS[exc.failure])

        email = (vouched.email or "").strip().lower()
        refusal = None
        if not email:
            refusal = "The identity provider did not say which email address you signed in with."
        elif not vouched.email_verified:
            refusal = f"The identity provider has not verified {email}: verify it there, then sign in again."
        role = access_rules.role_of(email) if refusal is None else None
        if refusal is None and role is None:
            refusal = f"{email} has no access to this console. Ask an administrator to add it."
        if refusal is not None or role is None:
            await record_refusal(db_session, email or f"oidc:{vouched.subject}", "oidc", refusal or "")
            logger.warning("console sign-in refused", actor=email, method="oidc", reason=refusal)
            return failure_page(request, "No access", refusal or "", HTTP_403_FORBIDDEN)

        identity = Identity(actor=email, role=role, method="oidc")
        sign_in(request, identity, pending.timezone, id_token=vouched.id_token)
        await record_sign_in(db_session, identity)
        logger.info("console sign-in", actor=identity.actor, method=identity.method, role=role.value)
        return Redirect(pending.next_page, status_code=HTTP_303_SEE_OTHER)
