"""Occurrences of a recurrence rule in a named time zone, DST-correct.

The rule (RFC 5545 RRULE, read by ``python-dateutil``) runs on local wall times from ``starts``,
the way a calendar does: "every day at 02:30" means 02:30 on each local day. Each wall time is
then mapped to an instant with zoneinfo:

- a wall time the spring change skips (02:30 when clocks jump from 02:00 to 03:00) is moved
  forward by the length of the gap (03:30), as most calendars do;
- a wall time the autumn change repeats (02:30 happens twice) is the first of the two (the one
  still on summer time);
- two wall times that land on one instant make one occurrence.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

from notification.errors import InvalidInput

# More often than hourly would make a mailing every few seconds: not what a schedule is for.
ALLOWED_FREQUENCIES = frozenset({"HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"})
_FREQUENCY = re.compile(r"(?:^|;)FREQ=(\w+)", re.IGNORECASE)
_UTC_UNTIL = re.compile(r"UNTIL=(\d{8}T\d{6})Z", re.IGNORECASE)
_LOOKED_AHEAD = dt.timedelta(days=2)


def to_instant(local: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant of a local wall time; skipped ones move forward, repeated ones are the first."""
    aware = local.replace(tzinfo=zone, fold=0)
    # For a skipped wall time, fold=0 reads it with the offset in force before the change, which
    # is the wall time moved forward by the gap once converted; for a repeated one it is the first.
    return aware.astimezone(dt.UTC)


def to_local(instant: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def parse_rule(text: str, starts: dt.datetime, zone: ZoneInfo, field: str = "rrule") -> rrule:
    """The rule with ``starts`` as its DTSTART; a UTC UNTIL is read as the local time it was then."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :]
    if not body or "\n" in body or "\r" in body or ":" in body:
        raise InvalidInput.of(field, "must be one valid RRULE value, such as FREQ=DAILY;COUNT=7")

    def local_until(match: re.Match[str]) -> str:
        until = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
        return f"UNTIL={to_local(until, zone):%Y%m%dT%H%M%S}"

    body = _UTC_UNTIL.sub(local_until, body)
    try:
        rule = rrulestr(body, dtstart=starts)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput.of(field, f"must be one valid RRULE value ({exc})") from None
    if not isinstance(rule, rrule):
        raise InvalidInput.of(field, "must be one valid RRULE value, such as FREQ=DAILY;COUNT=7")
    frequency = _FREQUENCY.search(body)
    if frequency is None or frequency.group(1).upper() not in ALLOWED_FREQUENCIES:
        raise InvalidInput.of(field, "must be one valid RRULE value with FREQ HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY")
    return rule


def occurrences_between(rule: rrule, zone: ZoneInfo, after: dt.datetime, until: dt.datetime) -> Iterator[dt.datetime]:
    """Occurrence instants in ``(after, until]``, in order, each once."""
    try:
        local_after = to_local(after, zone) - _LOOKED_AHEAD
        local_until = to_local(until, zone) + _LOOKED_AHEAD
    except OverflowError:
        return
    seen: set[dt.datetime] = set()
    for local in rule.between(local_after, local_until, inc=True):
        instant = to_instant(local, zone)
        if after < instant <= until and instant not in seen:
            seen.add(instant)
            yield instant


def next_occurrences(rule: rrule, zone: ZoneInfo, after: dt.datetime, count: int) -> list[dt.datetime]:
    """The next ``count`` occurrence instants strictly after ``after``."""
    found: list[dt.datetime] = []
    try:
        local = to_local(after, zone) - _LOOKED_AHEAD
    except OverflowError:
        return found
    last: dt.datetime | None = None
    while len(found) < count:
        following = rule.after(local, inc=False)
        if following is None:
            break
        local = following
        instant = to_instant(following, zone)
        if instant > after and instant != last:
            found.append(instant)
            last = instant
    return found
