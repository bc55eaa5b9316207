"""A test send of a personalised text, rendered for the client chosen and sent to the phone given."""

from __future__ import annotations

from dataclasses import replace

import pytest

from notification.config import Settings
from notification.dev.fake_provider import RunningFakeProvider
from tests.api import MAILINGS, Api, create_client, create_mailing
from tests.problems import assert_problem

TEXT = "{{ name | default('friend') }}, your parcel {{ order }} is waiting"


@pytest.fixture
def settings(settings: Settings, fake_provider: RunningFakeProvider) -> Settings:
    return replace(settings, provider_url=fake_provider.base_url, provider_timeout_s=2)


async def test_a_test_send_renders_for_the_chosen_client(client: Api, fake_provider: RunningFakeProvider) -> None:
    anna = await create_client(client, attributes={"name": "Анна", "order": "N7"})
    mailing = await create_mailing(client, text=TEXT)
    test = f"{MAILINGS}/{mailing['id']}/test"

    sent = await client.post(test, json={"phone": "79990000000", "client_id": anna["id"]})
    assert sent.status_code == 200, sent.text
    answer = sent.json()
    assert (answer["text"], answer["phone"], answer["encoding"]) == (
        "Анна, your parcel N7 is waiting",
        "79990000000",
        "UCS-2",
    )
    record = fake_provider.message(answer["id"])
    assert record is not None
    assert record.last_body["text"] == "Анна, your parcel N7 is waiting"

    nobody = await client.post(test, json={"phone": "79990000000"})
    assert nobody.json()["text"] == "friend, your parcel  is waiting"

    assert_problem(await client.post(test, json={"phone": "79990000000", "client_id": 999_999}), 400, "client_id")
    assert_problem(await client.post(test, json={"phone": "79990000000", "text": "{{ nope }}"}), 400, "text")
