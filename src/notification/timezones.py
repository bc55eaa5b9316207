from __future__ import annotations

import zoneinfo
from functools import lru_cache


@lru_cache(maxsize=1)
def known_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_known_timezone(name: str) -> bool:
    return name in known_timezones()
