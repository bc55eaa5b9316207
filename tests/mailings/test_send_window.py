"""Send windows as pure functions of an explicit clock: no database, no waiting."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from notification.send_window import is_open, next_opening, openings_by_zone

UTC = dt.UTC
T = dt.time
MOSCOW = ZoneInfo("Europe/Moscow")  # UTC+3 all year
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")

# Real zones: with DST in either hemisphere, half-hour and 45-minute offsets, none at all, and
# Lord Howe's half-hour DST shift.
ZONES = (
    "UTC",
    "Europe/Moscow",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Santiago",
    "America/St_Johns",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tehran",
    "Australia/Adelaide",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Pacific/Auckland",
    "Asia/Vladivostok",
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_inside_the_window_it_opens_now() -> None:
    now = utc(2026, 6, 1, 8, 15, 30)  # 11:15:30 in Moscow
    assert is_open(T(9, 0), T(18, 0), MOSCOW, now)
    assert next_opening(T(9, 0), T(18, 0), MOSCOW, now) == now


def test_the_start_is_inside_and_the_end_outside() -> None:
    assert is_open(T(9, 0), T(18, 0), MOSCOW, utc(2026, 6, 1, 6, 0))  # 09:00 local
    assert not is_open(T(9, 0), T(18, 0), MOSCOW, utc(2026, 6, 1, 15, 0))  # 18:00 local


def test_outside_the_window_it_waits_for_the_next_opening() -> None:
    before = utc(2026, 6, 1, 3, 0)  # 06:00 in Moscow
    assert not is_open(T(9, 0), T(18, 0), MOSCOW, before)
    assert next_opening(T(9, 0), T(18, 0), MOSCOW, before) == utc(2026, 6, 1, 6, 0)
    after = utc(2026, 6, 1, 17, 0)  # 20:00 in Moscow: tomorrow's opening
    assert next_opening(T(9, 0), T(18, 0), MOSCOW, after) == utc(2026, 6, 2, 6, 0)


def test_a_window_wrapping_midnight_is_open_on_both_sides_of_it() -> None:
    evening = utc(2026, 6, 1, 19, 30)  # 22:30 in Moscow
    early = utc(2026, 6, 1, 23, 30)  # 02:30 the next day in Moscow
    assert is_open(T(21, 0), T(9, 0), MOSCOW, evening)
    assert is_open(T(21, 0), T(9, 0), MOSCOW, early)
    assert next_opening(T(21, 0), T(9, 0), MOSCOW, evening) == evening
    assert next_opening(T(21, 0), T(9, 0), MOSCOW, early) == early


def test_a_window_wrapping_midnight_opens_in_the_evening() -> None:
    noon = utc(2026, 6, 1, 9, 0)  # 12:00 in Moscow
    assert not is_open(T(21, 0), T(9, 0), MOSCOW, noon)
    assert next_opening(T(21, 0), T(9, 0), MOSCOW, noon) == utc(2026, 6, 1, 18, 0)
    just_closed = utc(2026, 6, 2, 6, 0)  # 09:00 in Moscow
    assert next_opening(T(21, 0), T(9, 0), MOSCOW, just_closed) == utc(2026, 6, 2, 18, 0)


def test_spring_forward_opens_when_the_clock_jumps_past_a_start_that_does_not_exist() -> None:
    # Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST at 01:00 UTC; 02:30 never happens.
    now = utc(2026, 3, 28, 23, 0)  # 00:00 CET
    opening = next_opening(T(2, 30), T(4, 0), BERLIN, now)
    assert opening == utc(2026, 3, 29, 1, 0)
    assert opening.astimezone(BERLIN).time() == T(3, 0)


def test_spring_forward_skips_a_day_whose_whole_window_is_in_the_gap() -> None:
    now = utc(2026, 3, 28, 23, 0)
    # 02:15-02:45 does not occur at all on 2026-03-29: the next day's 02:15 CEST.
    assert next_opening(T(2, 15), T(2, 45), BERLIN, now) == utc(2026, 3, 30, 0, 15)


def test_fall_back_opens_at_the_first_of_two_occurrences() -> None:
    # New York, 2026-11-01: 01:00-02:00 happens twice, EDT (05:00-06:00 UTC) then EST.
    now = utc(2026, 11, 1, 3, 0)  # 23:00 EDT the day before
    opening = next_opening(T(1, 30), T(2, 0), NEW_YORK, now)
    assert opening == utc(2026, 11, 1, 5, 30)
    assert opening.astimezone(NEW_YORK).fold == 0


def test_fall_back_reopens_when_the_clock_runs_through_the_window_again() -> None:
    between = utc(2026, 11, 1, 5, 50)  # 01:50 EDT: open, and open again at 01:30 EST
    assert next_opening(T(1, 30), T(2, 0), NEW_YORK, between) == between
    assert next_opening(T(1, 0), T(1, 45), NEW_YORK, between) == utc(2026, 11, 1, 6, 0)  # 01:00 EST


def test_openings_are_computed_per_zone_and_unknown_zones_left_out() -> None:
    now = utc(2026, 6, 1, 3, 0)
    zones, openings = openings_by_zone(T(9, 0), T(18, 0), ["Europe/Moscow", "Not/AZone", "UTC"], now)
    assert zones == ["Europe/Moscow", "UTC"]
    assert openings == [utc(2026, 6, 1, 6, 0), utc(2026, 6, 1, 9, 0)]


_times = st.builds(T, st.integers(0, 23), st.integers(0, 59))
_instants = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2040, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)


@settings(max_examples=300, deadline=None)
@given(zone=st.sampled_from(ZONES), start=_times, end=_times, now=_instants)
def test_next_opening_is_the_first_open_instant(zone: str, start: dt.time, end: dt.time, now: dt.datetime) -> None:
    assume(start != end)  # refused by the API
    tz = ZoneInfo(zone)
    opening = next_opening(start, end, tz, now)
    assert opening >= now
    assert opening.tzinfo is not None
    assert opening.utcoffset() == dt.timedelta(0)
    assert is_open(start, end, tz, opening), "it never opens outside the window"
    # Nothing earlier was open: every whole minute before it (the wall clock moves through a
    # window of whole minutes minute by minute, except at a transition, which is a candidate
    # of its own), plus the second just before it.
    if opening > now:
        assert not is_open(start, end, tz, now)
        assert not is_open(start, end, tz, opening - dt.timedelta(seconds=1))
        minute = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        while minute < opening:
            assert not is_open(start, end, tz, minute), minute
            minute += dt.timedelta(minutes=1)
