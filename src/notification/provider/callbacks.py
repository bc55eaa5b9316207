"""Who a provider's callback is from: the provider named in its path, proven by a signature.

Callbacks are signed the way the Standard Webhooks specification says (headers ``webhook-id``,
``webhook-timestamp``, ``webhook-signature``: HMAC-SHA256 of ``id.timestamp.body`` under the
provider's ``whsec_`` secret), and checked with the specification's reference library, which
compares in constant time and refuses a timestamp more than 5 minutes away. The secret is the
stored provider's ``callback_secret`` (encrypted at rest) or, while no provider is stored,
``NOTIFICATION_PROVIDER_CALLBACK_SECRET`` for ``default``. Receipts use it; any other callback a
provider makes (mobile-originated messages) authenticates the same way.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import structlog
from litestar import Request
from litestar.datastructures import State
from psycopg import AsyncConnection
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from notification.config import Settings
from notification.errors import InvalidInput, invalid_body, problem
from notification.jobs import queue_pool
from notification.lib.sql import load
from notification.provider.routes import DEFAULT_PROVIDER
from notification.provider.secrets import SecretBox, SecretsUnavailable

statements = load(__package__, "callbacks.sql")

logger = structlog.get_logger(__name__)

SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]+={0,2}$")
MIN_SECRET_BYTES = 24


class CallbackRefused(Exception):
    """Why a callback is refused: ``status`` 404 (no such provider) or 401 (not signed by it)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` cannot sign callbacks (None: it can): a Standard Webhooks secret is
    ``whsec_`` and the base64 of at least 24 random bytes."""
    if not _SECRET.match(secret):
        return "must be whsec_ followed by base64, as a Standard Webhooks secret is"
    try:
        raw = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return "must be whsec_ followed by valid base64"
    if len(raw) < MIN_SECRET_BYTES:
        return f"must carry at least {MIN_SECRET_BYTES} random bytes"
    return None


async def authenticate_callback(
    conn: AsyncConnection, settings: Settings, provider: str, headers: Mapping[str, str], body: bytes
) -> str:
    """The provider's name once ``body`` is proven signed by it; raises :class:`CallbackRefused`."""
    secret = await _callback_secret(conn, settings, provider)
    given = {name: headers.get(name, "") for name in SIGNATURE_HEADERS}
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise CallbackRefused(401, f"the callback is not signed: header {missing[0]} is missing")
    try:
        Webhook(secret).verify(body, given, json_parse=False)
    except WebhookVerificationError as exc:
        raise CallbackRefused(401, f"the signature does not verify: {exc}") from None
    except (ValueError, binascii.Error):
        # Malformed headers (a signature without its version, bad base64) or a body not UTF-8.
        raise CallbackRefused(401, "the signature headers are malformed") from None
    return provider


async def _callback_secret(conn: AsyncConnection, settings: Settings, provider: str) -> str:
    row = await (await conn.execute(statements["callback_secret"], {"name": provider})).fetchone()
    any_stored, found, sealed = row if row is not None else (False, False, None)
    if not any_stored:
        if provider != DEFAULT_PROVIDER:
            raise CallbackRefused(404, f"no provider is named {provider!r}")
        if not settings.provider_callback_secret:
            raise CallbackRefused(401, "no callback secret is set for this provider")
        return settings.provider_callback_secret
    if not found:
        raise CallbackRefused(404, f"no provider is named {provider!r}")
    if sealed is None:
        raise CallbackRefused(401, "no callback secret is set for this provider")
    try:
        return SecretBox.from_settings(settings).open(sealed)
    except SecretsUnavailable:
        raise CallbackRefused(401, "this provider's callback secret cannot be read") from None


@asynccontextmanager
async def signed_callback(
    request: Request[Any, Any, Any], state: State, provider: str, kind: str
) -> AsyncIterator[tuple[AsyncConnection, bytes]]:
    """A connection and the body of a callback proven signed by ``provider``; a refusal is the
    problem details of its status (401, 404), logged as a ``kind`` callback refused."""
    settings: Settings = state.settings
    body = await request.body()
    async with queue_pool(state.job_queue).connection() as conn:
        try:
            await authenticate_callback(conn, settings, provider, request.headers, body)
        except CallbackRefused as exc:
            logger.warning(f"{kind} callback refused", provider=provider, status=exc.status, reason=exc.detail)
            raise problem(exc.status, exc.detail) from None
        yield conn, body


def decode_callback_body(body: bytes, kind: Any, what: str) -> Any:
    """The body as ``kind``, read only once its signature holds; a 400 naming the field otherwise."""
    try:
        return msgspec.json.decode(body, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        raise invalid_body(exc) from None
    except msgspec.DecodeError:
        raise InvalidInput.of("body", f"must be JSON: {what}") from None
