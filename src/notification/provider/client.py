"""The HTTP client of the SMS provider, and what each of its answers means for a message."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email.utils
import enum
import time
from dataclasses import dataclass

import httpx
import msgspec
from httpx_aiohttp import AiohttpTransport

from notification.config import Settings
from notification.messages.models import ErrorKind

# Answers worth another try later; every other 4xx is the provider refusing the message itself.
RETRYABLE_STATUS = frozenset({408, 425, 429})


class Outcome(enum.Enum):
    SENT = "sent"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    error: str | None = None
    error_kind: ErrorKind | None = None
    """Decided here, where the answer is read, and stored with the message: never re-parsed from ``error``."""
    status_code: int | None = None
    retry_after_s: float | None = None
    latency_s: float = 0.0


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


def classify(response: httpx.Response) -> SendResult:
    status = response.status_code
    if status == 200:
        try:
            answer = _answer_decoder.decode(response.content)
        except msgspec.DecodeError:
            return SendResult(Outcome.TRANSIENT, "malformed response body", ErrorKind.MALFORMED, status)
        if answer.code != 0:
            return SendResult(
                Outcome.TRANSIENT, f"provider answered code {answer.code}", ErrorKind.PROVIDER_CODE, status
            )
        return SendResult(Outcome.SENT, status_code=status)
    if status in RETRYABLE_STATUS or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return SendResult(Outcome.TRANSIENT, f"HTTP {status}", _http_error_kind(status), status, retry_after)
    return SendResult(Outcome.PERMANENT, f"HTTP {status}: {response.text[:200]}", ErrorKind.HTTP_4XX, status)


def _http_error_kind(status: int) -> ErrorKind:
    if status >= 500:
        return ErrorKind.HTTP_5XX
    return {429: ErrorKind.HTTP_429, 408: ErrorKind.HTTP_408}.get(status, ErrorKind.HTTP_4XX)


def describe_failure(exc: httpx.TransportError) -> tuple[str, ErrorKind]:
    # The aiohttp transport reports a refused connection as a connect *timeout*: its own
    # exception, kept as the cause, tells which it was.
    cause = exc.__cause__ or exc
    if isinstance(cause, TimeoutError | httpx.TimeoutException):
        return "timeout", ErrorKind.TIMEOUT
    return f"connection error: {type(cause).__name__}", ErrorKind.CONNECTION_ERROR


class ProviderClient:
    """One pooled connection set to the provider, shared by every send of a process."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._timeout_s = settings.provider_timeout_s
        limits = httpx.Limits(
            max_connections=settings.provider_concurrency,
            max_keepalive_connections=settings.provider_concurrency,
            keepalive_expiry=30,
        )
        self._base_url = settings.provider_url.rstrip("/")
        self._headers = {"Content-Type": "application/json"}
        if settings.provider_token:
            self._headers["Authorization"] = f"Bearer {settings.provider_token}"
        # httpx's own pool stalls under hundreds of concurrent requests (encode/httpx#3215):
        # measured here, 200 concurrent requests took 1-5 s through it and 0.1 s through aiohttp's.
        # Requests go straight to the transport: the client's redirect, auth and URL-merging layers
        # cost a fifth of a worker's CPU at 2,000 sends/s and this contract needs none of them.
        self._transport = transport or AiohttpTransport(limits=limits)

    async def send(self, message_id: int, phone: str, text: str, time_left_s: float) -> SendResult:
        """POST one message; never raises for the provider's failures, it classifies them.

        The whole request (connection, sending, the answer's headers and body) is over within
        ``time_left_s`` or the provider timeout, whichever is shorter; with no time left, no
        request is made."""
        # A request may not outlive the mailing it belongs to: never a floor above the time left
        # (a zero or negative timeout would mean none at all to the transport).
        timeout_s = min(self._timeout_s, time_left_s)
        if timeout_s <= 0:
            return SendResult(Outcome.TRANSIENT, "no time left before end_at", ErrorKind.DEADLINE)
        body = msgspec.json.encode({"id": message_id, "phone": int(phone), "text": text})
        started = time.perf_counter()
        request = httpx.Request(
            "POST",
            f"{self._base_url}/send/{message_id}",
            content=body,
            headers=self._headers,
            extensions={"timeout": httpx.Timeout(timeout_s).as_dict()},
        )
        try:
            # The transport's timeouts bound each step (connecting, each read), not their sum.
            async with asyncio.timeout(timeout_s):
                response = await self._transport.handle_async_request(request)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
        except TimeoutError:
            return SendResult(Outcome.TRANSIENT, "timeout", ErrorKind.TIMEOUT, latency_s=time.perf_counter() - started)
        except httpx.TransportError as exc:
            error, kind = describe_failure(exc)
            return SendResult(Outcome.TRANSIENT, error, kind, latency_s=time.perf_counter() - started)
        return dataclasses.replace(classify(response), latency_s=time.perf_counter() - started)

    async def aclose(self) -> None:
        await self._transport.aclose()
