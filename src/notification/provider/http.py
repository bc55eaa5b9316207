"""The HTTP provider (the first kind of :class:`~notification.provider.base.Provider`), and what
each of its answers means for a message."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import time

import aiohttp
import msgspec

from notification.config import Settings
from notification.messages.models import ErrorKind
from notification.provider.base import Capabilities, Outcome, OutgoingMessage, SendResult

KIND = "http"

# Answers worth another try later; every other 4xx is the provider refusing the message itself.
RETRYABLE_STATUS = frozenset({408, 425, 429})


class _ProviderAnswer(msgspec.Struct):
    code: int
    message: str = ""


_answer_decoder = msgspec.json.Decoder(_ProviderAnswer)


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def classify(status: int, content: bytes, retry_after: str | None, latency_s: float) -> SendResult:
    """What the provider's answer means for the message."""
    if status == 200:
        try:
            answer = _answer_decoder.decode(content)
        except msgspec.DecodeError:
            error = "malformed response body"
            return SendResult(Outcome.TRANSIENT, error, ErrorKind.MALFORMED, status, None, latency_s)
        if answer.code != 0:
            error = f"provider answered code {answer.code}"
            return SendResult(Outcome.TRANSIENT, error, ErrorKind.PROVIDER_CODE, status, None, latency_s)
        return SendResult(Outcome.SENT, None, None, status, None, latency_s)
    if status in RETRYABLE_STATUS or status >= 500:
        kind = _http_error_kind(status)
        return SendResult(Outcome.TRANSIENT, f"HTTP {status}", kind, status, parse_retry_after(retry_after), latency_s)
    error = f"HTTP {status}: {content.decode(errors='replace')[:200]}"
    return SendResult(Outcome.PERMANENT, error, ErrorKind.HTTP_4XX, status, None, latency_s)


def _http_error_kind(status: int) -> ErrorKind:
    if status >= 500:
        return ErrorKind.HTTP_5XX
    return {429: ErrorKind.HTTP_429, 408: ErrorKind.HTTP_408}.get(status, ErrorKind.HTTP_4XX)


def describe_failure(exc: aiohttp.ClientError | OSError) -> tuple[str, ErrorKind]:
    if isinstance(exc, TimeoutError):
        return "timeout", ErrorKind.TIMEOUT
    return f"connection error: {type(exc).__name__}", ErrorKind.CONNECTION_ERROR


class HttpProvider:
    """A provider spoken to over HTTP: one pooled connection set, shared by every send of a process.

    aiohttp directly: httpx's own pool stalls under hundreds of concurrent requests
    (encode/httpx#3215), and httpx's request and response objects on top of aiohttp's (its URL
    parsing, header normalisation and body decoders) took a quarter of a worker's CPU at 3,000
    sends/s for a contract that needs none of them."""

    def __init__(self, name: str, url: str, token: str, timeout_s: float, concurrency: int) -> None:
        self.name = name
        self.kind = KIND
        self.capabilities = Capabilities()
        self._timeout_s = timeout_s
        self._concurrency = concurrency
        self._base_url = url.rstrip("/")
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, name: str, settings: Settings) -> HttpProvider:
        """The provider of the ``NOTIFICATION_PROVIDER_*`` settings."""
        return cls(
            name,
            settings.provider_url,
            settings.provider_token,
            settings.provider_timeout_s,
            settings.provider_concurrency,
        )

    async def open(self) -> None:
        if self._session is None:
            self._open_session()

    def _open_session(self) -> aiohttp.ClientSession:
        # Made inside the event loop that will run it: by ``open``, or at the first send of a
        # provider nobody opened (tests build theirs outside any loop).
        connector = aiohttp.TCPConnector(limit=self._concurrency, keepalive_timeout=30, force_close=False)
        # No timeout of the session's own: each request's is the time its mailing has left.
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False
        )
        return self._session

    async def send(self, message: OutgoingMessage, time_left_s: float) -> SendResult:
        """POST one message; never raises for the provider's failures, it classifies them.

        The whole request (connection, sending, the answer's headers and body) is over within
        ``time_left_s`` or the provider timeout, whichever is shorter; with no time left, no
        request is made."""
        # A request may not outlive the mailing it belongs to.
        timeout_s = min(self._timeout_s, time_left_s)
        if timeout_s <= 0:
            return SendResult(Outcome.TRANSIENT, "no time left before end_at", ErrorKind.DEADLINE)
        session = self._session or self._open_session()
        message_id = message.id
        body = msgspec.json.encode({"id": message_id, "phone": int(message.phone), "text": message.text})
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                async with session.post(
                    # A redirect would carry the phone and text to a host nobody configured.
                    f"{self._base_url}/send/{message_id}",
                    data=body,
                    headers=self._headers,
                    allow_redirects=False,
                ) as response:
                    content = await response.read()
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            error, kind = describe_failure(exc)
            return SendResult(Outcome.TRANSIENT, error, kind, latency_s=time.perf_counter() - started)
        return classify(response.status, content, response.headers.get("Retry-After"), time.perf_counter() - started)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
