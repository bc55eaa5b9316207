"""How the service reads the provider's answers, over real HTTP: to the fake provider, and to a scripted one for
the answers the fake has no knob for (408, 425, a Retry-After date, a non-zero code, other 4xx)."""

from __future__ import annotations

import datetime as dt
import email.utils
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from notification.config import load_settings
from notification.dev.fake_provider import RunningFakeProvider
from notification.messages.models import ErrorKind
from notification.provider.base import Outcome, OutgoingMessage, SendResult
from notification.provider.http import HttpProvider, parse_retry_after
from tests.servers import free_port


def _client(base_url: str, timeout_s: float = 1.0) -> HttpProvider:
    settings = replace(load_settings({}), provider_url=base_url, provider_token="t0k", provider_timeout_s=timeout_s)
    return HttpProvider.from_settings("default", settings)


async def _send_once(base_url: str, time_left_s: float = 5, timeout_s: float = 1.0) -> SendResult:
    """One message through a client of its own, closed afterwards."""
    client = _client(base_url, timeout_s)
    try:
        return await client.send(OutgoingMessage(11, "79161234567", "Hello"), time_left_s=time_left_s)
    finally:
        await client.aclose()


@pytest.fixture
async def provider(fake_provider: RunningFakeProvider) -> AsyncIterator[HttpProvider]:
    client = _client(fake_provider.base_url)
    yield client
    await client.aclose()


class ScriptedProvider:
    """A provider answering every request with one scripted answer: for the answers the fake has no knob for."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b'{"code":0,"message":"OK"}'
        self.headers: dict[str, str] = {}
        self.byte_every_s = 0.0
        """When set, the body is written a byte at a time, this long apart."""
        self.requests = 0
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                scripted.requests += 1
                self.send_response(scripted.status)
                for name, value in {"Content-Type": "application/json", **scripted.headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(scripted.body)))
                self.end_headers()
                if not scripted.byte_every_s:
                    self.wfile.write(scripted.body)
                    return
                for byte in scripted.body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(scripted.byte_every_s)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


@pytest.fixture
def scripted() -> Iterator[ScriptedProvider]:
    provider = ScriptedProvider()
    thread = threading.Thread(target=provider.server.serve_forever, daemon=True)
    thread.start()
    yield provider
    provider.server.shutdown()
    provider.server.server_close()
    thread.join(timeout=10)


async def test_accepted_message_is_sent_with_the_contract_body(
    provider: HttpProvider, fake_provider: RunningFakeProvider
) -> None:
    fake_provider.set_options(token="t0k")
    result = await provider.send(OutgoingMessage(42, "79161234567", "Hello"), time_left_s=5)
    assert result.outcome is Outcome.SENT
    assert result.status_code == 200
    record = fake_provider.message(42)
    assert record is not None
    assert record.last_body == {"id": 42, "phone": 79161234567, "text": "Hello"}


@pytest.mark.parametrize(
    ("options", "outcome", "error"),
    [
        ({"error_rate": 1.0}, Outcome.TRANSIENT, "HTTP 500"),
        ({"down": True}, Outcome.TRANSIENT, "HTTP 503"),
        ({"rate_limit_rate": 1.0, "retry_after_s": 2.5}, Outcome.TRANSIENT, "HTTP 429"),
        ({"malformed_rate": 1.0}, Outcome.TRANSIENT, "malformed response body"),
        ({"reject_rate": 1.0}, Outcome.PERMANENT, "HTTP 400"),
        ({"token": "another"}, Outcome.PERMANENT, "HTTP 401"),
        ({"hang_rate": 1.0, "hang_s": 5.0}, Outcome.TRANSIENT, "timeout"),
    ],
)
async def test_each_kind_of_failure_is_classified(
    provider: HttpProvider,
    fake_provider: RunningFakeProvider,
    options: dict[str, object],
    outcome: Outcome,
    error: str,
) -> None:
    fake_provider.set_options(**options)
    result = await provider.send(OutgoingMessage(7, "79161234567", "Hello"), time_left_s=5)
    assert result.outcome is outcome
    assert result.error is not None
    assert result.error.startswith(error)
    if "retry_after_s" in options:
        assert result.retry_after_s == 2.5


async def test_unreachable_provider_is_transient() -> None:
    result = await _send_once(f"http://127.0.0.1:{free_port()}/v1")
    assert result.outcome is Outcome.TRANSIENT
    assert result.error is not None
    assert result.error.startswith("connection error")
    assert result.status_code is None


async def test_a_request_never_outlives_the_time_left_before_end_at(fake_provider: RunningFakeProvider) -> None:
    fake_provider.set_options(hang_rate=1.0, hang_s=60)
    result = await _send_once(fake_provider.base_url, time_left_s=0.3, timeout_s=30)
    assert (result.outcome, result.error) == (Outcome.TRANSIENT, "timeout")
    # Given up when the mailing's time ran out, not after the provider timeout of 30 s.
    assert result.latency_s < 10


async def test_an_answer_trickling_in_is_given_up_when_the_time_left_runs_out(scripted: ScriptedProvider) -> None:
    # Each byte comes well within the time left, the whole answer (2.5 s) long after it: the bound is on the
    # whole request, not on each read.
    scripted.byte_every_s = 0.1
    result = await _send_once(scripted.base_url, time_left_s=0.6, timeout_s=30)
    assert (result.outcome, result.error) == (Outcome.TRANSIENT, "timeout")
    assert result.latency_s < 2


async def test_no_request_is_made_without_time_left(scripted: ScriptedProvider) -> None:
    for time_left_s in (0, -0.01, -5):
        result = await _send_once(scripted.base_url, time_left_s=time_left_s)
        assert (result.outcome, result.error_kind) == (Outcome.TRANSIENT, ErrorKind.DEADLINE)
    assert scripted.requests == 0


@pytest.mark.parametrize(
    ("status", "body", "headers", "outcome", "error", "retry_after_s"),
    [
        pytest.param(408, b"{}", {}, Outcome.TRANSIENT, "HTTP 408", None, id="408"),
        pytest.param(425, b"{}", {}, Outcome.TRANSIENT, "HTTP 425", None, id="425"),
        pytest.param(429, b"{}", {"Retry-After": "7"}, Outcome.TRANSIENT, "HTTP 429", 7.0, id="429-seconds"),
        pytest.param(429, b"{}", {}, Outcome.TRANSIENT, "HTTP 429", None, id="429-no-retry-after"),
        pytest.param(503, b"{}", {"Retry-After": "12"}, Outcome.TRANSIENT, "HTTP 503", 12.0, id="503-retry-after"),
        pytest.param(500, b"oops", {}, Outcome.TRANSIENT, "HTTP 500", None, id="500"),
        pytest.param(502, b"<html>", {}, Outcome.TRANSIENT, "HTTP 502", None, id="502"),
        pytest.param(504, b"", {}, Outcome.TRANSIENT, "HTTP 504", None, id="504"),
        pytest.param(
            200, b'{"code":5,"message":"no route"}', {}, Outcome.TRANSIENT, "provider answered code 5", None, id="code"
        ),
        pytest.param(200, b"OK", {}, Outcome.TRANSIENT, "malformed response body", None, id="not-json"),
        pytest.param(200, b'{"code":"0"}', {}, Outcome.TRANSIENT, "malformed response body", None, id="code-text"),
        pytest.param(200, b'{"message":"OK"}', {}, Outcome.TRANSIENT, "malformed response body", None, id="no-code"),
        pytest.param(200, b"", {}, Outcome.TRANSIENT, "malformed response body", None, id="empty"),
        pytest.param(200, b'{"code":0}', {}, Outcome.SENT, None, None, id="ok-without-message"),
        pytest.param(403, b"forbidden", {}, Outcome.PERMANENT, "HTTP 403: forbidden", None, id="403"),
        pytest.param(404, b"no such msgId", {}, Outcome.PERMANENT, "HTTP 404: no such msgId", None, id="404"),
        pytest.param(422, b'{"code":422}', {}, Outcome.PERMANENT, 'HTTP 422: {"code":422}', None, id="422"),
        pytest.param(
            400, b"x" * 500, {"Retry-After": "5"}, Outcome.PERMANENT, "HTTP 400: " + "x" * 200, None, id="400-long"
        ),
    ],
)
async def test_each_answer_is_classified(
    scripted: ScriptedProvider,
    status: int,
    body: bytes,
    headers: dict[str, str],
    outcome: Outcome,
    error: str | None,
    retry_after_s: float | None,
) -> None:
    scripted.answer(status, body, headers)
    result = await _send_once(scripted.base_url)
    assert (result.outcome, result.error, result.status_code, result.retry_after_s) == (
        outcome,
        error,
        status,
        retry_after_s,
    )


async def test_a_redirect_is_a_failure_and_is_not_followed(scripted: ScriptedProvider) -> None:
    elsewhere = ScriptedProvider()
    thread = threading.Thread(target=elsewhere.server.serve_forever, daemon=True)
    thread.start()
    try:
        # A provider (or whoever took its name) sending the phone and text on to another host.
        scripted.answer(307, b"", {"Location": f"{elsewhere.base_url}/send/11"})
        result = await _send_once(scripted.base_url)
    finally:
        elsewhere.server.shutdown()
        elsewhere.server.server_close()
        thread.join(timeout=10)
    assert result.outcome is Outcome.PERMANENT
    assert result.status_code == 307
    assert elsewhere.requests == 0


async def test_429_honours_a_retry_after_given_as_an_http_date(scripted: ScriptedProvider) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60)
    scripted.answer(429, b"{}", {"Retry-After": email.utils.format_datetime(when, usegmt=True)})
    result = await _send_once(scripted.base_url)
    assert result.outcome is Outcome.TRANSIENT
    assert result.retry_after_s is not None
    # The date has whole seconds; the request took a moment.
    assert 50 < result.retry_after_s <= 60


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("Mon, 23 Nov 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
