"""Checking an error answer: an RFC 9457 problem that names the offending fields and matches the
documented problem schema exactly."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from notification.errors import ProblemDetails


def assert_problem(response: httpx.Response, status: int, *fields: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    # Decoding into the documented struct refuses a missing field, a wrong type or an extra key.
    problem = msgspec.json.decode(response.content, type=ProblemDetails)
    assert problem.status == status
    assert problem.type == "about:blank"
    assert problem.detail
    if fields:
        assert problem.errors is not msgspec.UNSET, response.text
        assert [error.field for error in problem.errors] == list(fields), response.text
    body: dict[str, Any] = response.json()
    return body
