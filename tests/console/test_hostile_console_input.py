"""What the API refuses with a 400 the console refuses with a 400 page, never a 500: ids past the
database's bigint, NUL characters PostgreSQL cannot hold, digits int() does not read."""

from __future__ import annotations

import pytest

from tests.console_client import Console

PAST_BIGINT = str(2**63)


@pytest.mark.parametrize(
    "path",
    [
        f"/admin/clients?after={PAST_BIGINT}",
        f"/admin/clients?before={PAST_BIGINT}",
        f"/admin/mailings?after={PAST_BIGINT}",
        f"/admin/mailings?before={PAST_BIGINT}",
        f"/admin/audit?after={PAST_BIGINT}",
        f"/admin/audit?before={PAST_BIGINT}",
        "/admin/clients?timezone=%00",
        "/admin/clients?tag=a%00b",
        "/admin/audit?actor=%00",
        "/admin/mailings/audience?tags=%00",
        "/admin/audit?entity_id=%C2%B2",
    ],
)
async def test_each_hostile_console_input_is_a_400_page(console: Console, path: str) -> None:
    response = await console.get(path)
    assert response.status_code == 400, (path, response.status_code)
    assert "text/html" in response.headers["content-type"]
