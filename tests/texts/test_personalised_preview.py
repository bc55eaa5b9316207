"""The preview of a personalised text: the parts each recipient would take, counted over every matching
client or estimated from a sample with its margin, against a direct count, and three rendered examples."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
import smsutil

from notification.preview import service as preview_service
from tests.api import CLIENTS, MAILINGS, Api, utc_now
from tests.factories import next_phone
from tests.problems import assert_problem

TEXT = "{{ name | default('friend') }}, your parcel {{ order }} is waiting for you at the pickup point."
LONG = "Александра-Виктория Константиновна"


def body(**fields: Any) -> dict[str, Any]:
    now = utc_now()
    return {
        "text": TEXT,
        "kind": "service",
        "start_at": now.isoformat(),
        "end_at": (now + dt.timedelta(hours=1)).isoformat(),
        **fields,
    }


async def import_clients(client: Api, names: list[str | None], city: str = "Kazan") -> None:
    """Clients named in turn (None: no name), the i-th with order N<i>, all in ``city``."""
    rows = []
    for i, name in enumerate(names):
        attributes = {"order": f"N{i}", "city": city} | ({"name": name} if name is not None else {})
        rows.append({"phone": next_phone(), "timezone": "UTC", "attributes": attributes})
    response = await client.post(f"{CLIENTS}/bulk", json=rows)
    assert response.status_code == 201, response.text


def direct_count(names: list[str | None]) -> Counter[int]:
    """Each recipient's text rendered by hand and split by smsutil."""
    counted: Counter[int] = Counter()
    for i, name in enumerate(names):
        text = f"{name or 'friend'}, your parcel N{i} is waiting for you at the pickup point."
        counted[len(smsutil.split(text).parts)] += 1
    return counted


async def test_the_distribution_of_a_small_audience_is_exact(client: Api) -> None:
    names: list[str | None] = ["Anna"] * 12 + [LONG] * 5 + [None] * 3
    await import_clients(client, names)
    await import_clients(client, ["Ignored"] * 4, city="Moscow")

    response = await client.post(f"{MAILINGS}/preview", json=body(filter={"attributes": {"city": "Kazan"}}))
    assert response.status_code == 200, response.text
    preview = response.json()
    distribution = preview["parts_distribution"]
    assert distribution["exact"] is True
    assert distribution["sample_size"] == len(names)
    assert {b["parts"]: b["clients"] for b in distribution["buckets"]} == dict(direct_count(names))
    assert all(b["margin"] == 0 for b in distribution["buckets"])
    assert preview["parts_total"] == sum(p * n for p, n in direct_count(names).items())
    assert len(preview["examples"]) == 3
    for example in preview["examples"]:
        assert example["parts"] == len(smsutil.split(example["text"]).parts)
        assert "your parcel N" in example["text"]


async def test_a_large_audience_is_estimated_from_a_sample_within_its_margin(
    client: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(preview_service, "SAMPLE_SIZE", 100)
    names: list[str | None] = ["Bo"] * 300 + [LONG] * 100
    await import_clients(client, names)

    preview = (await client.post(f"{MAILINGS}/preview", json=body())).json()
    distribution = preview["parts_distribution"]
    assert distribution["exact"] is False
    assert 0 < distribution["sample_size"] <= 100
    truth = direct_count(names)
    for bucket in distribution["buckets"]:
        true_share = truth[bucket["parts"]] / len(names)
        # Four margins (each at 95 %) apart would happen about once in 15,000 runs.
        assert abs(bucket["share"] - true_share) <= 4 * bucket["margin"] + 1e-9, bucket
    exact_total = sum(p * n for p, n in truth.items())
    assert abs(preview["parts_total"] - exact_total) <= 4 * distribution["parts_total_margin"] + 1


async def test_a_plain_text_costs_every_recipient_the_same_without_rendering(client: Api) -> None:
    await import_clients(client, ["Anna", None])
    preview = (await client.post(f"{MAILINGS}/preview", json=body(text="Plain"))).json()
    assert preview["parts_distribution"] == {
        "exact": True,
        "sample_size": 0,
        "buckets": [{"parts": 1, "clients": 2, "share": 1.0, "margin": 0.0}],
        "parts_total_margin": 0,
    }
    assert preview["examples"] == []


async def test_a_preview_refuses_an_unknown_variable(client: Api) -> None:
    response = await client.post(f"{MAILINGS}/preview", json=body(text="Hi {{ nobody }}"))
    assert_problem(response, 400, "text")
