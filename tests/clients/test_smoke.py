from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient


async def test_create_and_get_client(client: AsyncTestClient[Litestar]) -> None:
    created = await client.post("/api/v1/clients", json={"phone": "79161234567", "timezone": "Europe/Moscow"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["operator_code"] == "916"
    fetched = await client.get(f"/api/v1/clients/{body['id']}")
    assert fetched.json() == body
