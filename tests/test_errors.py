"""An error nobody planned for: a 500 problem that says nothing about the failure, and a log line that does."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.app import create_app
from notification.config import Settings
from notification.logging import configure_logging
from tests.api import CLIENTS, MESSAGES
from tests.conftest import API_TOKEN
from tests.problems import assert_problem

GENERIC_500 = {
    "type": "about:blank",
    "title": "Internal Server Error",
    "status": 500,
    "detail": "The server could not handle the request",
}


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


async def _logged_call(settings: Settings, path: str) -> tuple[Any, io.StringIO]:
    """One authorised GET on a fresh app, and what the app logged at INFO meanwhile."""
    settings = replace(settings, log_level="INFO")
    app = create_app(settings)
    log = io.StringIO()
    configure_logging(settings, stream=log)
    async with AsyncTestClient(app=app) as api:
        response = await api.get(path, headers={"Authorization": f"Bearer {API_TOKEN}", "X-Request-ID": "boom-1"})
    return response, log


async def test_a_database_error_is_a_bare_500_and_a_logged_traceback(db: AsyncSession, settings: Settings) -> None:
    await db.execute(text("ALTER TABLE messages RENAME TO messages_elsewhere"))
    await db.commit()

    response, log = await _logged_call(settings, MESSAGES)

    body = assert_problem(response, 500)
    assert body == GENERIC_500
    assert response.headers["X-Request-ID"] == "boom-1"
    [failure] = [line for line in _lines(log) if line["event"] == "unhandled error"]
    assert failure["level"] == "error"
    assert failure["request_id"] == "boom-1"
    assert (failure["method"], failure["path"]) == ("GET", MESSAGES)
    # The log names the cause, the answer does not.
    assert '"messages" does not exist' in failure["exception"]
    assert "messages" not in response.text.replace(MESSAGES, "")
    [access] = [line for line in _lines(log) if line["event"] == "request handled"]
    assert access["status"] == 500


async def test_an_unreachable_database_leaks_neither_its_address_nor_its_password(settings: Settings) -> None:
    password = "pw-never-shown-4711"
    unreachable = replace(settings, database_url=f"postgresql://notification:{password}@127.0.0.1:1/nowhere")

    response, log = await _logged_call(unreachable, CLIENTS)

    # The database away is no fault of the request's: come back shortly.
    assert assert_problem(response, 503)["detail"] == "The database cannot be reached: try again shortly"
    assert response.headers["retry-after"] == "5"
    assert "127.0.0.1" not in response.text
    [failure] = [line for line in _lines(log) if line["event"] == "database unreachable"]
    assert failure["level"] == "warning"
    assert password not in log.getvalue()


async def test_the_api_still_answers_after_an_unexpected_error(settings: Settings, db: AsyncSession) -> None:
    await db.execute(text("ALTER TABLE messages RENAME TO messages_elsewhere"))
    await db.commit()
    app = create_app(settings)
    async with AsyncTestClient(app=app) as api:
        api.headers["Authorization"] = f"Bearer {API_TOKEN}"
        assert (await api.get(MESSAGES)).status_code == 500
        await db.execute(text("ALTER TABLE messages_elsewhere RENAME TO messages"))
        await db.commit()
        after = await api.get(MESSAGES)
    assert after.status_code == 200
    assert after.json() == {"items": [], "total": 0, "limit": 50, "offset": 0}
