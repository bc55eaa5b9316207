"""The preview's left-out figures against a direct count of the rows the test wrote, and against what
planning then leaves out of the mailing."""

from __future__ import annotations

import datetime as dt

import pytest

from notification.config import Settings
from tests.api import Api, utc_now
from tests.consent.audience import write_directory
from tests.delivery.observe import rows


@pytest.mark.parametrize("kind", ["service", "advertising"])
async def test_the_previews_left_out_counts_equal_a_direct_count(client: Api, settings: Settings, kind: str) -> None:
    db = settings.psycopg_conninfo
    directory = await write_directory(db, 300, consent_every=3, suppress_every=7, tag="vip")
    await write_directory(db, 50, first=1_000, tag="other")
    now = utc_now()
    body = {
        "text": "Sale",
        "kind": kind,
        "start_at": (now + dt.timedelta(hours=1)).isoformat(),
        "end_at": (now + dt.timedelta(hours=2)).isoformat(),
        "filter": {"tags": ["vip"]},
    }
    answer = (await client.post("/api/v1/mailings/preview", json=body)).json()

    # The oracle: the rows as the test wrote them, read back with a query of its own.
    ((direct_suppressed, direct_no_consent),) = await rows(
        db,
        "SELECT count(*) FILTER (WHERE s.phone IS NOT NULL),"
        " count(*) FILTER (WHERE s.phone IS NULL AND %(ad)s"
        "   AND (c.consent_given_at IS NULL OR c.consent_revoked_at IS NOT NULL))"
        " FROM clients c LEFT JOIN suppressions s USING (phone) WHERE c.tag = 'vip'",
        {"ad": kind == "advertising"},
    )
    assert answer["clients"] == 300
    assert answer["left_out"] == {"suppressed": direct_suppressed, "no_consent": direct_no_consent}
    assert answer["recipients"] == len(directory.reached(kind)) == 300 - direct_suppressed - direct_no_consent
    assert direct_suppressed > 0
    assert (direct_no_consent > 0) is (kind == "advertising")

    created = await client.post("/api/v1/mailings", json=body)
    of_mailing = (await client.get(f"/api/v1/mailings/{created.json()['id']}/preview")).json()
    assert of_mailing["left_out"] == answer["left_out"]
