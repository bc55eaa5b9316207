from __future__ import annotations

import zoneinfo
from functools import lru_cache
from typing import Annotated

import msgspec


@lru_cache(maxsize=1)
def known_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_known_timezone(name: str) -> bool:
    return name in known_timezones()


TimeZoneName = Annotated[
    str,
    msgspec.Meta(
        max_length=64,
        description="IANA time zone name, one of those the server's zone database knows",
        examples=["Europe/Moscow"],
        # Documented as the closed list it is; the service checks it (msgspec cannot).
        extra_json_schema={"extra": {"enum": sorted(known_timezones())}},
    ),
]
