"""GET /messages: its filters, alone and together, and its pages, on rows arranged directly."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import MESSAGES, Api
from tests.factories import ClientFactory, MailingFactory
from tests.problems import assert_problem

# (mailing, client, status) of each message, by index into the mailings and clients arranged below.
ARRANGED = [
    (0, 0, "sent"),
    (0, 1, "pending"),
    (0, 2, "failed"),
    (1, 0, "pending"),
    (1, 1, "sent"),
    (1, 2, "expired"),
    (2, 0, "cancelled"),
]


def _instant(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value is not None else None


def _comparable(message: dict[str, Any]) -> dict[str, Any]:
    """A message of the API with its times as instants, to compare with the rows whatever their notation."""
    return {k: _instant(v) if k.endswith("_at") else v for k, v in message.items()}


@pytest.fixture
async def messages(db: AsyncSession) -> list[dict[str, Any]]:
    """The arranged messages as the API must show them, in id order."""
    mailings = [MailingFactory.build() for _ in range(3)]
    clients = [ClientFactory.build() for _ in range(3)]
    db.add_all([*mailings, *clients])
    await db.flush()
    rows = []
    for attempt, (mailing, client, status) in enumerate(ARRANGED):
        result = await db.execute(
            text(
                "INSERT INTO messages (mailing_id, client_id, status, attempts, last_error, error_kind, sent_at)"
                " VALUES (:m, :c, CAST(:s AS text), :a, :e, :k, CASE WHEN CAST(:s AS text) = 'sent' THEN now() END)"
                " RETURNING id, mailing_id, client_id, status, created_at, due_at, sent_at, attempts, last_error,"
                " error_kind, delivery_state, delivery_error, receipt_at"
            ),
            {
                "m": mailings[mailing].id,
                "c": clients[client].id,
                "s": status,
                "a": attempt,
                "e": None if status in {"sent", "pending"} else f"{status} for a reason",
                "k": {"failed": "http_4xx", "expired": "deadline", "cancelled": "cancelled"}.get(status),
            },
        )
        rows.append(dict(result.one()._mapping))
    await db.commit()
    return rows


async def _list(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.get(MESSAGES, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _page(rows: list[dict[str, Any]], total: int, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    return {"items": rows, "total": total, "limit": limit, "offset": offset}


def _shown(body: dict[str, Any]) -> dict[str, Any]:
    return body | {"items": [_comparable(m) for m in body["items"]]}


async def test_every_message_with_each_field(client: Api, messages: list[dict[str, Any]]) -> None:
    body = await _list(client)

    assert _shown(body) == _page(messages, total=7)
    # As JSON: ids as numbers, times with their offset, no field beyond the documented ones.
    first = body["items"][0]
    assert set(first) == {
        "id",
        "mailing_id",
        "client_id",
        "status",
        "created_at",
        "due_at",
        "sent_at",
        "attempts",
        "last_error",
        "error_kind",
        "delivery_state",
        "delivery_error",
        "receipt_at",
    }
    assert dt.datetime.fromisoformat(first["sent_at"]).tzinfo is not None


@pytest.mark.parametrize(
    ("field", "index"),
    [("mailing_id", 0), ("mailing_id", 1), ("mailing_id", 2), ("client_id", 0), ("client_id", 2)],
)
async def test_filter_by_an_id(client: Api, messages: list[dict[str, Any]], field: str, index: int) -> None:
    wanted = sorted({m[field] for m in messages})[index]

    body = await _list(client, **{field: wanted})

    matching = [m for m in messages if m[field] == wanted]
    assert matching
    assert _shown(body) == _page(matching, total=len(matching))


@pytest.mark.parametrize("status", ["pending", "sent", "failed", "expired", "cancelled"])
async def test_filter_by_status(client: Api, messages: list[dict[str, Any]], status: str) -> None:
    body = await _list(client, status=status)

    matching = [m for m in messages if m["status"] == status]
    assert _shown(body) == _page(matching, total=len(matching))


async def test_filters_combine(client: Api, messages: list[dict[str, Any]]) -> None:
    second_mailing = messages[3]["mailing_id"]
    first_client = messages[0]["client_id"]

    pending_of_mailing = await _list(client, mailing_id=second_mailing, status="pending")
    of_client_and_mailing = await _list(client, mailing_id=second_mailing, client_id=first_client)
    nothing = await _list(client, mailing_id=second_mailing, status="cancelled")

    assert _shown(pending_of_mailing) == _page([messages[3]], total=1)
    assert _shown(of_client_and_mailing) == _page([messages[3]], total=1)
    assert nothing == _page([], total=0)


async def test_pages_follow_the_ids_and_count_every_match(client: Api, messages: list[dict[str, Any]]) -> None:
    first = await _list(client, limit=3)
    second = await _list(client, limit=3, offset=3)
    last = await _list(client, limit=3, offset=6)
    past_the_end = await _list(client, limit=3, offset=50)
    filtered = await _list(client, status="pending", limit=1, offset=1)

    assert _shown(first) == _page(messages[:3], total=7, limit=3)
    assert _shown(second) == _page(messages[3:6], total=7, limit=3, offset=3)
    assert _shown(last) == _page(messages[6:], total=7, limit=3, offset=6)
    assert past_the_end == _page([], total=7, limit=3, offset=50)
    assert _shown(filtered) == _page([messages[3]], total=2, limit=1, offset=1)


async def test_an_unknown_id_filters_to_nothing(client: Api, messages: list[dict[str, Any]]) -> None:
    assert await _list(client, mailing_id=987_654) == _page([], total=0)
    assert await _list(client, client_id=987_654) == _page([], total=0)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"status": "delivered"}, "status", id="status-unknown"),
        pytest.param({"mailing_id": 0}, "mailing_id", id="mailing-id-zero"),
        pytest.param({"client_id": "abc"}, "client_id", id="client-id-not-a-number"),
        pytest.param({"limit": 0}, "limit", id="limit-zero"),
        pytest.param({"offset": -1}, "offset", id="offset-negative"),
    ],
)
async def test_bad_query_parameters_are_refused_by_name(client: Api, params: dict[str, Any], field: str) -> None:
    assert_problem(await client.get(MESSAGES, params=params), 400, field)
