"""Recurrence rules read in a named zone: DST changes, weekly days, COUNT and UNTIL."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from notification.errors import InvalidInput
from notification.schedules.recurrence import next_occurrences, occurrences_between, parse_rule

BERLIN = ZoneInfo("Europe/Berlin")
MOSCOW = ZoneInfo("Europe/Moscow")


def local(instants: list[dt.datetime], zone: ZoneInfo) -> list[str]:
    return [i.astimezone(zone).isoformat() for i in instants]


def test_daily_0230_in_berlin_across_the_spring_change_moves_forward_by_the_gap() -> None:
    rule = parse_rule("FREQ=DAILY", dt.datetime(2026, 3, 28, 2, 30), BERLIN)
    found = next_occurrences(rule, BERLIN, dt.datetime(2026, 3, 27, tzinfo=dt.UTC), 3)
    # 29 March 2026: clocks jump from 02:00 to 03:00; 02:30 does not exist that day.
    assert local(found, BERLIN) == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:30:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_daily_0230_in_berlin_across_the_autumn_change_is_the_first_of_the_two() -> None:
    rule = parse_rule("FREQ=DAILY", dt.datetime(2026, 10, 24, 2, 30), BERLIN)
    found = list(
        occurrences_between(
            rule, BERLIN, dt.datetime(2026, 10, 23, tzinfo=dt.UTC), dt.datetime(2026, 10, 27, tzinfo=dt.UTC)
        )
    )
    # 25 October 2026: 02:30 happens twice; the first (still summer time, +02:00) is taken, once.
    assert local(found, BERLIN) == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]
    assert [i.isoformat() for i in found] == [
        "2026-10-24T00:30:00+00:00",
        "2026-10-25T00:30:00+00:00",
        "2026-10-26T01:30:00+00:00",
    ]


def test_hourly_through_the_spring_gap_makes_one_occurrence_per_instant() -> None:
    rule = parse_rule("FREQ=HOURLY;COUNT=5", dt.datetime(2026, 3, 29, 0, 30), BERLIN)
    found = next_occurrences(rule, BERLIN, dt.datetime(2026, 3, 28, tzinfo=dt.UTC), 10)
    # 02:30 moved to 03:30 is the real 03:30: one occurrence, not two.
    assert local(found, BERLIN) == [
        "2026-03-29T00:30:00+01:00",
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T03:30:00+02:00",
        "2026-03-29T04:30:00+02:00",
    ]


def test_weekly_on_chosen_days() -> None:
    rule = parse_rule("FREQ=WEEKLY;BYDAY=MO,WE,FR", dt.datetime(2026, 12, 1, 9, 0), MOSCOW)  # a Tuesday
    found = next_occurrences(rule, MOSCOW, dt.datetime(2026, 11, 30, tzinfo=dt.UTC), 5)
    assert local(found, MOSCOW) == [
        "2026-12-02T09:00:00+03:00",
        "2026-12-04T09:00:00+03:00",
        "2026-12-07T09:00:00+03:00",
        "2026-12-09T09:00:00+03:00",
        "2026-12-11T09:00:00+03:00",
    ]


def test_count_ends_the_rule() -> None:
    rule = parse_rule("FREQ=DAILY;COUNT=7", dt.datetime(2026, 12, 5, 10, 0), MOSCOW)
    found = next_occurrences(rule, MOSCOW, dt.datetime(2026, 12, 1, tzinfo=dt.UTC), 50)
    assert len(found) == 7
    assert found[0].isoformat() == "2026-12-05T07:00:00+00:00"
    assert found[-1].isoformat() == "2026-12-11T07:00:00+00:00"
    assert next_occurrences(rule, MOSCOW, found[-1], 5) == []


@pytest.mark.parametrize("until", ["20261208T100000", "20261208T070000Z"])
def test_until_is_inclusive_as_local_or_utc_time(until: str) -> None:
    rule = parse_rule(f"FREQ=DAILY;UNTIL={until}", dt.datetime(2026, 12, 5, 10, 0), MOSCOW)
    found = next_occurrences(rule, MOSCOW, dt.datetime(2026, 12, 1, tzinfo=dt.UTC), 50)
    assert local(found, MOSCOW)[-1] == "2026-12-08T10:00:00+03:00"
    assert len(found) == 4


@pytest.mark.parametrize(
    "rule",
    ["FREQ=MINUTELY", "FREQ=SECONDLY", "FREQ=DAILY;BYDAY=XX", "DTSTART:20260101T000000\nRRULE:FREQ=DAILY", "nonsense"],
)
def test_bad_rules_are_refused_naming_the_field(rule: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_rule(rule, dt.datetime(2026, 12, 5, 10, 0), MOSCOW)
    assert refused.value.errors[0][0] == "rrule"
