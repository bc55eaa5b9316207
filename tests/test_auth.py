"""Every /api/v1 route wants a bearer token of NOTIFICATION_API_TOKENS; probes, metrics and docs stay open."""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from notification.app import API_PREFIX, create_app
from notification.auth import token_accepted
from notification.config import Settings, load_settings
from notification.logging import configure_logging
from tests.api import Api
from tests.conftest import API_TOKEN

_PATH_PARAM = re.compile(r"\{[^}:]+(:[^}]+)?\}")
_WITH_BODY = {"POST", "PUT", "PATCH"}


def api_endpoints(app: Litestar) -> list[tuple[str, str]]:
    """(method, concrete path) of every /api/v1 handler, read from the app: nothing listed by hand."""
    endpoints = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith(API_PREFIX):
            continue
        path = _PATH_PARAM.sub("1", route.path)
        endpoints.extend(
            (method, path)
            for method, (handler, _) in sorted(route.route_handler_map.items())
            if method not in {"OPTIONS", "HEAD"} and not _signed_by_a_provider(handler)
        )
    return endpoints


def _signed_by_a_provider(handler: HTTPRouteHandler) -> bool:
    """A provider's callback: proven by its signature, not by a token (tests/receipts, tests/consent)."""
    return handler.security == []


@pytest.fixture
async def anonymous(app: Litestar) -> AsyncIterator[Api]:
    async with AsyncTestClient(app=app) as api:
        yield api


async def _call(api: Api, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict]:
    body = {"json": {}} if method in _WITH_BODY else {}
    response = await api.request(method, path, headers=headers, **body)  # type: ignore[arg-type]
    content_type = response.headers.get("content-type", "")
    # A CSV export answers in CSV; every refusal is problem details.
    body = response.json() if response.content and "json" in content_type else {}
    return response.status_code, content_type, body


def test_the_walk_finds_every_api_route(app: Litestar) -> None:
    endpoints = api_endpoints(app)
    # A sanity floor, not a list: the walk must reach the routes of every controller.
    assert {path.split("/")[3] for _, path in endpoints} == {
        "clients",
        "mailings",
        "messages",
        "audit",
        "audiences",
        "schedules",
        "operator-codes",
        "providers",
        "routes",
        "webhooks",
        "suppressions",
        "inbound",
    }
    assert ("POST", "/api/v1/clients/bulk") in endpoints
    assert ("GET", "/api/v1/mailings/1/stats") in endpoints
    assert len(endpoints) >= 16


def _assert_unauthorized(status: int, content_type: str, body: dict, *, secret: str | None = None) -> None:
    assert status == 401
    assert content_type.startswith("application/problem+json")
    assert body["status"] == 401
    assert body["title"] == "Unauthorized"
    assert body["detail"]
    if secret:
        assert secret not in json.dumps(body)


async def test_every_api_route_refuses_a_missing_token(app: Litestar, anonymous: Api) -> None:
    for method, path in api_endpoints(app):
        status, content_type, body = await _call(anonymous, method, path)
        _assert_unauthorized(status, content_type, body)


@pytest.mark.parametrize(
    "authorization",
    ["Bearer wrong-token", f"Bearer {API_TOKEN}x", f"Basic {API_TOKEN}", API_TOKEN, "Bearer", "Bearer  "],
)
async def test_every_api_route_refuses_a_wrong_token(app: Litestar, anonymous: Api, authorization: str) -> None:
    for method, path in api_endpoints(app):
        status, content_type, body = await _call(anonymous, method, path, {"Authorization": authorization})
        _assert_unauthorized(
            status, content_type, body, secret=authorization.rsplit(maxsplit=1)[-1] if authorization else None
        )


async def test_every_api_route_accepts_the_right_token(app: Litestar, anonymous: Api) -> None:
    for method, path in api_endpoints(app):
        status, _, _ = await _call(anonymous, method, path, {"Authorization": f"Bearer {API_TOKEN}"})
        assert status != 401, (method, path)
        assert status < 500, (method, path, status)


async def test_the_scheme_is_case_insensitive_and_any_configured_token_works(settings: Settings) -> None:
    app = create_app(replace(settings, api_tokens=("first".ljust(32, "1"), "second".ljust(32, "2"))))
    async with AsyncTestClient(app=app) as api:
        assert (
            await api.get("/api/v1/clients", headers={"Authorization": "bearer " + "second".ljust(32, "2")})
        ).status_code == 200
        assert (
            await api.get("/api/v1/clients", headers={"Authorization": "Bearer " + "first".ljust(32, "1")})
        ).status_code == 200
        assert (await api.get("/api/v1/clients", headers={"Authorization": "Bearer third"})).status_code == 401


async def test_no_configured_token_refuses_every_call(settings: Settings) -> None:
    app = create_app(replace(settings, api_tokens=()))
    async with AsyncTestClient(app=app) as api:
        for method, path in api_endpoints(app):
            for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": f"Bearer {API_TOKEN}"}):
                status, content_type, body = await _call(api, method, path, headers)
                _assert_unauthorized(status, content_type, body)


@pytest.mark.parametrize("path", ["/health", "/ready", "/docs/openapi.json", "/docs", "/metrics"])
async def test_probes_metrics_and_docs_stay_open(anonymous: Api, path: str) -> None:
    response = await anonymous.get(path)
    assert response.status_code == 200, response.text


async def test_the_openapi_document_declares_the_bearer_scheme(anonymous: Api, app: Litestar) -> None:
    document = (await anonymous.get("/docs/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert len(schemes) == 1
    [(name, scheme)] = schemes.items()
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    for method, path in api_endpoints(app):
        template = next(p for p in document["paths"] if _PATH_PARAM.sub("1", p) == path)
        operation = document["paths"][template][method.lower()]
        assert operation["security"] == [{name: []}], (method, path)
    assert "security" not in document["paths"]["/health"]["get"]


async def test_a_refusal_is_logged_without_the_token(settings: Settings, anonymous: Api) -> None:
    stream = io.StringIO()
    configure_logging(settings, stream=stream)
    secret = "s3cret-value-that-must-not-leak"

    response = await anonymous.get(
        "/api/v1/mailings", headers={"Authorization": f"Bearer {secret}", "X-Request-ID": "auth-test-1"}
    )

    assert response.status_code == 401
    assert response.headers["X-Request-ID"] == "auth-test-1"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert secret not in response.text
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [failure] = [line for line in lines if line["event"] == "authentication failed"]
    assert failure["level"] == "warning"
    assert failure["path"] == "/api/v1/mailings"
    assert failure["method"] == "GET"
    assert failure["request_id"] == "auth-test-1"
    assert failure["reason"] == "wrong token"
    assert secret not in stream.getvalue()


def test_tokens_are_compared_in_full() -> None:
    assert token_accepted("abc", ("xyz", "abc"))
    assert not token_accepted("ab", ("abc",))
    assert not token_accepted("abcd", ("abc",))
    assert not token_accepted("abc", ())


def test_tokens_come_from_the_environment_and_stay_out_of_the_repr() -> None:
    settings = load_settings(
        {"NOTIFICATION_API_TOKENS": " tok-one-0123456789abcdef0123456789, tok-two-0123456789abcdef0123456789 ,,"}
    )
    assert settings.api_tokens == ("tok-one-0123456789abcdef0123456789", "tok-two-0123456789abcdef0123456789")
    assert "tok-" not in repr(settings)
    assert load_settings({}).api_tokens == ()
