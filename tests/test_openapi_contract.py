"""The OpenAPI document says what the service does: every answer it gives, the one problem schema its
errors follow, the fields it refuses, the patterns it enforces, and examples it would accept."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import jsonschema
import pytest

from tests.api import Api
from tests.conftest import API_TOKEN

PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetails"}
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
async def document(client: Api) -> dict[str, Any]:
    response = await client.get("/docs/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def component(document: dict[str, Any], ref: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema


def example_of(document: dict[str, Any], name: str) -> dict[str, Any]:
    """A body made of the documented example of each property (and of nested objects, recursively)."""
    body: dict[str, Any] = {}
    for field, schema in component(document, name)["properties"].items():
        if "$ref" in schema:
            body[field] = example_of(document, schema["$ref"])
        elif "examples" in schema:
            body[field] = schema["examples"][0]
    return body


def test_every_operation_of_the_api_is_protected_and_documents_its_401(document: dict[str, Any]) -> None:
    every = [(method, path, op) for method, path, op in operations(document) if path.startswith("/api/v1/")]
    # Providers' callbacks are signed by the provider (Standard Webhooks), not sent with a token.
    signed = [(method, path) for method, path, op in every if not op.get("security")]
    assert sorted(signed) == [
        ("POST", "/api/v1/providers/{provider_name}/inbound"),
        ("POST", "/api/v1/providers/{provider_name}/receipts"),
    ]
    api = [(method, path, op) for method, path, op in every if op.get("security")]

    # 16 operations of the directory, mailings, messages and statistics, the audit log, 6 operator
    # controls (pause, resume, retry, a test send and the audience preview of a new or existing
    # mailing); 6 of audiences, the facets, 3 of operator code names and 10 of schedules; 7 of the
    # providers (5) and their routes (2); 7 of webhook endpoints (5, the rotation of a secret and the
    # deliveries); 6 of the suppression list (list, add, get, delete, CSV import and export) and the
    # list of inbound messages.
    assert len(api) == 64
    for method, path, operation in api:
        assert operation.get("security") == [{"BearerToken": []}], (method, path)
        assert operation["responses"]["401"]["content"]["application/problem+json"]["schema"] == PROBLEM_REF


def test_every_error_answer_is_documented_as_the_one_problem_schema(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if status.startswith("4"):
                assert list(response["content"]) == ["application/problem+json"], (method, path, status)
                problem = response["content"]["application/problem+json"]
                assert problem["schema"] == PROBLEM_REF, (method, path, status)
                [example] = problem["examples"].values()
                validate_problem(document, example["value"])
                assert example["value"]["status"] == int(status)


@pytest.mark.parametrize(
    "name", ["ClientCreate", "ClientPatch", "MailingCreate", "MailingPatch", "MailingFilter", "SendWindow"]
)
def test_bodies_that_refuse_unknown_fields_document_it(document: dict[str, Any], name: str) -> None:
    assert component(document, name)["additionalProperties"] is False


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/clients", {"phone": "79161234567", "timezone": "UTC", "email": "x@y"}, "email"),
        ("POST", "/api/v1/clients/bulk", [{"phone": "79161234567", "timezone": "UTC", "vip": True}], "[0].vip"),
        ("POST", "/api/v1/mailings", {"text": "a", "filter": {"regions": []}}, "filter.regions"),
    ],
)
async def test_an_unknown_field_is_refused_naming_it(
    client: Api, document: dict[str, Any], method: str, path: str, body: Any, field: str
) -> None:
    response = await client.request(method, path, json=body)

    assert response.status_code == 400, response.text
    validate_problem(document, response.json())
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_the_enforced_patterns_and_formats_are_documented(document: dict[str, Any]) -> None:
    client = component(document, "ClientCreate")["properties"]
    assert client["phone"]["pattern"] == "^7[0-9]{10}$"
    assert client["phone"]["minLength"] == client["phone"]["maxLength"] == 11
    assert set(client["timezone"]["enum"]) == zoneinfo.available_timezones()
    assert client["operator_code"]["pattern"] == "^[0-9]{3}$"
    assert client["tag"]["pattern"] == "^[^\\u0000]*$"
    mailing_filter = component(document, "MailingFilter")["properties"]
    assert mailing_filter["operator_codes"]["items"]["pattern"] == "^[0-9]{3}$"
    assert mailing_filter["tags"]["items"]["maxLength"] == 100
    mailing = component(document, "MailingCreate")
    assert mailing["properties"]["start_at"]["format"] == "date-time"
    assert "end_at must be after start_at" in mailing["description"]
    id_schema = document["paths"]["/api/v1/clients/{client_id}"]["get"]["parameters"][0]["schema"]
    # Exact integers: 2**63 - 1 written as a float would round up past the last valid id.
    assert id_schema["maximum"] == 2**63 - 1
    assert isinstance(id_schema["maximum"], int)


def test_no_example_is_a_random_string(document: dict[str, Any]) -> None:
    def examples(node: Any) -> Iterator[Any]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"examples", "example"}:
                    yield value
                yield from examples(value)
        elif isinstance(node, list):
            for value in node:
                yield from examples(value)

    found = list(examples(document))
    assert found
    for value in found:
        assert not re.search(r"\b[A-Za-z]{20}\b", str(value)), value


async def test_the_documented_examples_make_bodies_the_service_accepts(client: Api, document: dict[str, Any]) -> None:
    new_client = example_of(document, "ClientCreate")
    new_mailing = example_of(document, "MailingCreate") | {"send_window": example_of(document, "SendWindow")}

    created = await client.post("/api/v1/clients", json=new_client)
    assert created.status_code == 201, created.text
    assert created.json()["phone"] == "79161234567"
    created = await client.post("/api/v1/mailings", json=new_mailing)
    assert created.status_code == 201, created.text
    assert created.json()["send_window"] == {"start": "09:00", "end": "21:00"}


def validate_problem(document: dict[str, Any], body: Any) -> None:
    jsonschema.validate(body, {"$ref": "#/components/schemas/ProblemDetails", "components": document["components"]})


async def test_every_kind_of_error_sends_exactly_the_documented_problem(client: Api, document: dict[str, Any]) -> None:
    await client.post("/api/v1/clients", json={"phone": "79161234567", "timezone": "UTC"})
    answers = {
        "invalid query": await client.get("/api/v1/clients", params={"limit": "many"}),
        "invalid body": await client.post("/api/v1/clients", json={"phone": "8916"}),
        "broken rule": await client.post("/api/v1/clients", json={"phone": "79161234568", "timezone": "Mars/Base"}),
        "not JSON": await client.post("/api/v1/clients", content=b"{", headers={"content-type": "application/json"}),
        "no such row": await client.get("/api/v1/mailings/42"),
        "no such route": await client.get("/api/v1/nowhere"),
        "wrong method": await client.put("/api/v1/clients"),
        "duplicate": await client.post("/api/v1/clients", json={"phone": "79161234567", "timezone": "UTC"}),
        "no token": await client.get("/api/v1/clients", headers={"Authorization": ""}),
        "wrong token": await client.get("/api/v1/clients", headers={"Authorization": f"Bearer {API_TOKEN}x"}),
    }

    statuses = {kind: response.status_code for kind, response in answers.items()}
    assert statuses == {
        "invalid query": 400,
        "invalid body": 400,
        "broken rule": 400,
        "not JSON": 400,
        "no such row": 404,
        "no such route": 404,
        "wrong method": 405,
        "duplicate": 409,
        "no token": 401,
        "wrong token": 401,
    }
    for kind, response in answers.items():
        assert response.headers["content-type"] == "application/problem+json", kind
        body = response.json()
        validate_problem(document, body)
        assert body["title"], kind
        assert body["detail"], kind
        assert "source" not in str(body), kind
    assert answers["invalid query"].json()["errors"] == [{"field": "limit", "message": "Expected `int`, got `str`"}]
    assert answers["broken rule"].json()["errors"][0]["field"] == "timezone"
    assert answers["no token"].headers["www-authenticate"].startswith("Bearer")


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in {"src", "href"} and value]


async def test_swagger_ui_loads_only_files_the_app_serves(client: Api) -> None:
    page = await client.get("/docs", headers={"Authorization": ""})
    assert page.status_code == 200
    parser = _Assets()
    parser.feed(page.text)

    assert len(parser.urls) == 4, parser.urls
    for url in parser.urls:
        assert url.startswith("/static/vendor/swagger-ui/"), url
        asset = await client.get(url, headers={"Authorization": ""})
        assert asset.status_code == 200, url
        assert len(asset.content) > 500, url
    bundle = await client.get("/static/vendor/swagger-ui/5.35.0/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text
    assert bundle.headers["content-type"].startswith(("text/javascript", "application/javascript"))


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/mailings", {"text": "a", "start_at": 0, "end_at": "2030-01-01T00:00:00Z"}, "start_at"),
        ("/api/v1/clients", {"phone": 79161234567, "timezone": "UTC"}, "phone"),
        ("/api/v1/clients/bulk", [{"phone": "79161234567", "timezone": "UTC", "tag": 7}], "[0].tag"),
        ("/api/v1/mailings", {"text": "a", "start_at": "2030-01-01T00:00:00Z", "end_at": True}, "end_at"),
    ],
)
async def test_bodies_take_only_the_documented_json_types(
    client: Api, document: dict[str, Any], path: str, body: Any, field: str
) -> None:
    # Litestar converts bodies the lax way query strings need: a number would pass for a date-time.
    response = await client.post(path, json=body)

    assert response.status_code == 400, response.text
    validate_problem(document, response.json())
    assert [e["field"] for e in response.json()["errors"]] == [field]
