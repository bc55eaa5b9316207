"""Local-time send windows: when a client may receive a message, in the client's own time zone.

Pure functions with an explicit clock (``at`` / ``now``), so that planning, delivery and the tests
all reason about the same instants; the database only ever sees their results. It sits outside
the engine because the API's audience preview asks the same questions before a mailing exists.

The window ``[start, end)`` is a range of local wall-clock times; ``end`` before ``start`` wraps
past midnight (21:00-09:00 is open in the evening and the early morning). A window is open at an
instant when the client's wall clock *at that instant* reads a time inside it. Everything else
follows from that one definition, including the DST rules:

* spring forward: when the local start time does not exist (02:30 in Europe/Berlin on
  2026-03-29, the clock jumps from 02:00 to 03:00), the window opens at the first instant the wall
  clock is at or past the start and still inside the window: the jump itself, 03:00 local;
* fall back: when the local start time occurs twice (01:30 in America/New_York on 2026-11-01),
  the window opens at its first occurrence (fold=0); the earliest open instant is what counts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Every window that lasts at least a minute opens within two local days, even when a transition
# swallows a whole day (Pacific/Apia skipped 2011-12-30): four days of search always suffice.
_SEARCH_DAYS = 4
# Transitions are found by sampling the UTC offset this often, then bisecting to the second;
# no zone has had two transitions within an hour of each other.
_SAMPLE_STEP = dt.timedelta(hours=1)


def is_open(window_start: dt.time, window_end: dt.time, tz: ZoneInfo, at: dt.datetime) -> bool:
    """Whether the local wall time at ``at`` (an aware instant) lies in ``[start, end)``.

    Computed from the instant, so it is never ambiguous: an instant has exactly one wall time,
    even during a DST overlap, and wall times inside a DST gap simply never occur.
    """
    local = at.astimezone(tz).time().replace(tzinfo=None)
    if window_start < window_end:
        return window_start <= local < window_end
    return local >= window_start or local < window_end


def next_opening(window_start: dt.time, window_end: dt.time, tz: ZoneInfo, now: dt.datetime) -> dt.datetime:
    """The earliest instant at or after ``now`` at which the window is open, in UTC.

    The window becomes open only where the wall clock enters it: either it runs continuously onto
    ``start`` (that local time, converted with zoneinfo, checking that it exists and taking both
    occurrences when it repeats), or a DST transition makes it jump into the window. So the answer
    is ``now`` when open, else the earliest of those candidate instants at which the window is
    open: no scanning minute by minute, and exact to the second.
    """
    now = now.astimezone(dt.UTC)
    if is_open(window_start, window_end, tz, now):
        return now
    horizon = now + dt.timedelta(days=_SEARCH_DAYS)
    candidates = [*_start_instants(window_start, tz, now, horizon), *_transitions(tz, now, horizon)]
    for candidate in sorted(c for c in candidates if now <= c <= horizon):
        if is_open(window_start, window_end, tz, candidate):
            return candidate
    msg = f"send window {window_start}-{window_end} never opens in {tz.key} within {_SEARCH_DAYS} days of {now}"
    raise ValueError(msg)


def _start_instants(window_start: dt.time, tz: ZoneInfo, now: dt.datetime, horizon: dt.datetime) -> list[dt.datetime]:
    """Every real instant whose wall time is ``window_start``, over the local days of the search.

    A nonexistent local time (in a DST gap) converts to an instant whose wall time differs: it is
    dropped, the transition that skips it is a candidate of its own.
    """
    first_day = now.astimezone(tz).date() - dt.timedelta(days=1)
    last_day = horizon.astimezone(tz).date() + dt.timedelta(days=1)
    instants = []
    day = first_day
    while day <= last_day:
        for fold in (0, 1):
            local = dt.datetime.combine(day, window_start, tzinfo=tz).replace(fold=fold)
            instant = local.astimezone(dt.UTC)
            back = instant.astimezone(tz)
            if back.date() == day and back.time() == window_start:
                instants.append(instant)
        day += dt.timedelta(days=1)
    return instants


def _transitions(tz: ZoneInfo, now: dt.datetime, horizon: dt.datetime) -> list[dt.datetime]:
    """The instants in ``[now, horizon]`` where the zone's UTC offset changes (to the second)."""
    found = []
    t = now.replace(microsecond=0)
    offset = _offset(tz, t)
    while t < horizon:
        later = t + _SAMPLE_STEP
        later_offset = _offset(tz, later)
        if later_offset != offset:
            # The first second with the new offset, by bisection.
            low, high = t, later
            while high - low > dt.timedelta(seconds=1):
                middle = low + (high - low) // 2
                middle = middle.replace(microsecond=0)
                if _offset(tz, middle) == offset:
                    low = middle
                else:
                    high = middle
            found.append(high)
        t, offset = later, later_offset
    return found


def _offset(tz: ZoneInfo, at: dt.datetime) -> dt.timedelta | None:
    """The zone's UTC offset at an instant (``tz.utcoffset`` would read ``at`` as a wall time)."""
    return at.astimezone(tz).utcoffset()


def openings_by_zone(
    window_start: dt.time, window_end: dt.time, zones: Iterable[str], now: dt.datetime
) -> tuple[list[str], list[dt.datetime]]:
    """The next opening of the window in each of a few distinct zones, as two parallel lists
    ready for ``unnest(%s::text[], %s::timestamptz[])``: one computation per zone, never one per
    client. A zone zoneinfo does not know (the API never accepts one) is left out, so its
    messages are not moved; the claim still refuses to send them outside the window."""
    names: list[str] = []
    openings: list[dt.datetime] = []
    for name in zones:
        try:
            tz = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        names.append(name)
        openings.append(next_opening(window_start, window_end, tz, now))
    return names, openings
