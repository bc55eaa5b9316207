"""The fake SMS provider, exercised over real HTTP the way the service talks to it."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from typing import Any

import httpx
import msgspec
import pytest

from notification.dev.fake_provider import (
    Arrival,
    FakeProviderOptions,
    MessageRecord,
    Received,
    RunningFakeProvider,
    serve_fake_provider,
)

OK = {"code": 0, "message": "OK"}
TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def body(msg_id: int, phone: int = 79001234567, text: str = "hello") -> dict[str, Any]:
    return {"id": msg_id, "phone": phone, "text": text}


def send(fake: RunningFakeProvider, msg_id: int, payload: Any = None, **kwargs: Any) -> httpx.Response:
    payload = body(msg_id) if payload is None else payload
    return httpx.post(f"{fake.base_url}/send/{msg_id}", json=payload, headers=AUTH, **kwargs)


def is_ok_body(content: bytes) -> bool:
    try:
        return bool(json.loads(content) == OK)
    except ValueError:
        return False


def test_accepts_a_valid_send_and_records_it() -> None:
    with serve_fake_provider(FakeProviderOptions(token=TOKEN)) as fake:
        response = send(fake, 42)

        assert response.status_code == 200
        assert response.json() == OK
        assert fake.received() == Received(requests={42: 1}, accepted={42: 1}, total_requests=1, total_accepted=1)
        assert httpx.get(f"{fake.url}/_fake/received").json() == {
            "requests": {"42": 1},
            "accepted": {"42": 1},
            "total_requests": 1,
            "total_accepted": 1,
        }
        record = httpx.get(f"{fake.url}/_fake/messages/42").json()
        arrivals = record.pop("arrivals")
        assert record == {"msg_id": 42, "requests": 1, "accepted": 1, "last_body": body(42)}
        assert [(a["msg_id"], a["status"], a["accepted"], a["phone"], a["text"]) for a in arrivals] == [
            (42, 200, True, 79001234567, "hello")
        ]
        assert httpx.get(f"{fake.url}/_fake/messages/43").status_code == 404


def test_records_when_each_request_arrived_and_was_answered_and_how() -> None:
    with serve_fake_provider(FakeProviderOptions(token=TOKEN, latency_ms=100)) as fake:
        before = dt.datetime.now(dt.UTC)
        send(fake, 1, body(1, phone=79161112233, text="first"))
        httpx.post(f"{fake.base_url}/send/2", json=body(2, text="no token"))
        send(fake, 3, {"id": 3, "phone": "79161112233", "text": 7})
        fake.set_options(reject_rate=1)
        send(fake, 1, body(1, text="again"))
        after = dt.datetime.now(dt.UTC)

        arrivals = fake.arrivals()
        assert [(a.msg_id, a.status, a.accepted, a.phone, a.text) for a in arrivals] == [
            (1, 200, True, 79161112233, "first"),
            (2, 401, False, 79001234567, "no token"),
            # Fields of the wrong type are not recorded as if they were right.
            (3, 400, False, None, None),
            (1, 400, False, 79001234567, "again"),
        ]
        for arrival in arrivals:
            assert arrival.answered_at is not None
            assert before <= arrival.arrived_at
            # Answered after the latency (asyncio's timer may wake a little early on the wall clock).
            assert arrival.arrived_at + dt.timedelta(milliseconds=90) <= arrival.answered_at <= after
        assert [a.arrived_at for a in arrivals] == sorted(a.arrived_at for a in arrivals)
        assert fake.arrivals({1}) == [arrivals[0], arrivals[3]]
        assert fake.message(1) == MessageRecord(1, 2, 1, body(1, text="again"), [arrivals[0], arrivals[3]])

        over_http = httpx.get(f"{fake.url}/_fake/arrivals", params={"msg_id": [1, 2]})
        assert over_http.status_code == 200
        assert msgspec.json.decode(over_http.content, type=list[Arrival]) == [arrivals[0], arrivals[1], arrivals[3]]
        everything = msgspec.json.decode(httpx.get(f"{fake.url}/_fake/arrivals").content, type=list[Arrival])
        assert everything == arrivals


def test_a_request_in_flight_is_recorded_as_not_answered_yet() -> None:
    with serve_fake_provider(FakeProviderOptions(hang_rate=1, hang_s=60)) as fake:
        with pytest.raises(httpx.ReadTimeout):
            send(fake, 5, timeout=0.2)
        [arrival] = fake.arrivals()
        assert (arrival.msg_id, arrival.answered_at, arrival.status, arrival.accepted) == (5, None, None, False)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
def test_rejects_a_missing_or_wrong_token(headers: dict[str, str]) -> None:
    with serve_fake_provider(FakeProviderOptions(token=TOKEN)) as fake:
        response = httpx.post(f"{fake.base_url}/send/1", json=body(1), headers=headers)

        assert response.status_code == 401
        assert response.json() == {"code": 401, "message": "missing or invalid bearer token"}
        assert fake.received() == Received(requests={1: 1}, accepted={}, total_requests=1, total_accepted=0)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (body(8), "id must equal the msgId in the path"),
        ({"id": 7, "phone": "79001234567", "text": "hi"}, "phone must be an integer"),
        ({"id": True, "phone": 79001234567, "text": "hi"}, "id must be an integer"),
        ({"id": 7, "phone": 79001234567}, "text must be a string"),
        ([7], "body must be a JSON object"),
    ],
)
def test_rejects_a_body_not_matching_the_contract(payload: Any, message: str) -> None:
    with serve_fake_provider() as fake:
        response = send(fake, 7, payload)

        assert response.status_code == 400
        assert response.json() == {"code": 400, "message": message}
        assert fake.received().accepted == {}


def test_rejects_a_body_that_is_not_json() -> None:
    with serve_fake_provider() as fake:
        response = httpx.post(f"{fake.base_url}/send/7", content=b"{not json")

        assert response.status_code == 400
        assert response.json() == {"code": 400, "message": "body is not valid JSON"}
        record = fake.message(7)
        assert record is not None
        assert record.last_body == "{not json"


def test_down_answers_503_until_switched_off_at_runtime() -> None:
    with serve_fake_provider(FakeProviderOptions(down=True)) as fake:
        down = send(fake, 1)
        assert down.status_code == 503
        assert down.json() == {"code": 503, "message": "fake provider is down"}

        options = httpx.patch(f"{fake.url}/_fake/options", json={"down": False})
        assert options.status_code == 200
        assert options.json()["down"] is False

        up = send(fake, 1)
        assert up.status_code == 200
        assert up.json() == OK
        assert fake.received() == Received(requests={1: 2}, accepted={1: 1}, total_requests=2, total_accepted=1)


def test_options_patch_refuses_unknown_or_invalid_knobs() -> None:
    with serve_fake_provider() as fake:
        assert httpx.patch(f"{fake.url}/_fake/options", json={"dwon": True}).status_code == 400
        assert httpx.patch(f"{fake.url}/_fake/options", json={"error_rate": 1.5}).status_code == 400
        assert httpx.patch(f"{fake.url}/_fake/options", json={"down": "yes"}).status_code == 400
        assert fake.state.options == FakeProviderOptions()


def test_reset_forgets_what_was_received() -> None:
    with serve_fake_provider() as fake:
        send(fake, 1)
        assert httpx.post(f"{fake.url}/_fake/reset").status_code == 204
        assert fake.received() == Received(requests={}, accepted={}, total_requests=0, total_accepted=0)
        assert httpx.get(f"{fake.url}/_fake/messages/1").status_code == 404


def test_error_rate_answers_500() -> None:
    with serve_fake_provider(FakeProviderOptions(error_rate=1)) as fake:
        response = send(fake, 1)

        assert response.status_code == 500
        assert response.json() == {"code": 500, "message": "injected internal error"}
        assert fake.received().total_accepted == 0


def test_reject_rate_answers_400() -> None:
    with serve_fake_provider(FakeProviderOptions(reject_rate=1)) as fake:
        response = send(fake, 1)

        assert response.status_code == 400
        assert response.json() == {"code": 400, "message": "injected permanent rejection"}
        assert fake.received().total_accepted == 0


@pytest.mark.parametrize(("retry_after_s", "header"), [(1, "1"), (2.5, "2.5")])
def test_rate_limit_rate_answers_429_with_retry_after(retry_after_s: float, header: str) -> None:
    with serve_fake_provider(FakeProviderOptions(rate_limit_rate=1, retry_after_s=retry_after_s)) as fake:
        response = send(fake, 1)

        assert response.status_code == 429
        assert response.headers["Retry-After"] == header
        assert response.json() == {"code": 429, "message": "rate limited"}
        assert fake.received().total_accepted == 0


def test_malformed_rate_answers_200_with_a_body_that_is_not_the_success_json() -> None:
    with serve_fake_provider(FakeProviderOptions(malformed_rate=1, seed=1)) as fake:
        responses = [send(fake, msg_id) for msg_id in range(20)]

        assert {response.status_code for response in responses} == {200}
        assert not any(is_ok_body(response.content) for response in responses)
        assert len({response.content for response in responses}) > 1
        assert fake.received().total_accepted == 0


def test_latency_delays_every_answer() -> None:
    with serve_fake_provider(FakeProviderOptions(latency_ms=200)) as fake:
        started = time.perf_counter()
        response = send(fake, 1)
        elapsed = time.perf_counter() - started

        assert response.status_code == 200
        assert elapsed >= 0.2


def test_hang_outlasts_the_client_timeout_without_holding_up_shutdown() -> None:
    # An hour-long hang: a shutdown that waited for it would be caught by the join's deadline below.
    fake = serve_fake_provider(FakeProviderOptions(hang_rate=1, hang_s=3600)).start()
    with pytest.raises(httpx.ReadTimeout):
        send(fake, 1, timeout=0.2)
    stopping = threading.Thread(target=fake.stop, daemon=True)
    stopping.start()
    stopping.join(timeout=60)

    assert not stopping.is_alive(), "stopping the fake waited for the hung request"
    # The hung request was released by the shutdown, answered 503, and not delivered.
    [arrival] = fake.arrivals()
    assert (arrival.status, arrival.accepted) == (503, False)
    assert arrival.answered_at is not None
    assert fake.received() == Received(requests={1: 1}, accepted={}, total_requests=1, total_accepted=0)


def test_seed_makes_the_failure_stream_reproducible() -> None:
    options = FakeProviderOptions(error_rate=0.5, seed=1234)
    runs = []
    for _ in range(2):
        with serve_fake_provider(options) as fake:
            runs.append([send(fake, msg_id).status_code for msg_id in range(30)])

    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500}


@pytest.mark.asyncio
async def test_async_context_manager_serves_async_clients() -> None:
    async with serve_fake_provider(FakeProviderOptions(token=TOKEN)) as fake, httpx.AsyncClient() as client:
        response = await client.post(f"{fake.base_url}/send/5", json=body(5), headers=AUTH)

        assert response.status_code == 200
        assert response.json() == OK
        fake.set_options(down=True)
        assert (await client.post(f"{fake.base_url}/send/5", json=body(5), headers=AUTH)).status_code == 503
        assert fake.received().requests == {5: 2}


@pytest.mark.asyncio
async def test_sync_context_manager_runs_off_the_test_event_loop() -> None:
    # A server on the test's own loop would deadlock here: the request below awaits on that same loop.
    with serve_fake_provider(FakeProviderOptions(latency_ms=50)) as fake:
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{fake.base_url}/send/9", json=body(9))

        assert response.status_code == 200
        assert response.json() == OK
