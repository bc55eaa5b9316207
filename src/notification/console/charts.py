"""Charts drawn on the server as SVG geometry: no chart library, nothing for the browser to fetch."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from notification.stats.queries import StatusCounts

WIDTH = 720
PLOT_HEIGHT = 110
# Below the plot: the time labels.
HEIGHT = PLOT_HEIGHT + 22
# Final statuses first, pending last: a bar fills from the left as the mailing progresses.
STATUS_ORDER = ("sent", "failed", "expired", "cancelled", "pending")


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class SendRateChart:
    """Messages sent per minute over a span of minutes ending now: bars, or an area for long spans."""

    bars: list[Bar]
    area: str
    ticks: list[Tick]
    peak: int
    total: int
    width: int = WIDTH
    height: int = HEIGHT
    plot_height: int = PLOT_HEIGHT


def send_rate_chart(
    per_minute: dict[dt.datetime, int], now: dt.datetime, minutes: int, zone: ZoneInfo, tick_minutes: int
) -> SendRateChart:
    last = now.astimezone(dt.UTC).replace(second=0, microsecond=0)
    starts = [last - dt.timedelta(minutes=minutes - 1 - i) for i in range(minutes)]
    sent = {minute.astimezone(dt.UTC): count for minute, count in per_minute.items()}
    values = [sent.get(start, 0) for start in starts]
    peak = max(values, default=0)
    scale = PLOT_HEIGHT / peak if peak else 0.0
    step = WIDTH / minutes

    def label(start: dt.datetime) -> str:
        return start.astimezone(zone).strftime("%H:%M")

    def minute_of_day(start: dt.datetime) -> int:
        local = start.astimezone(zone)
        return local.hour * 60 + local.minute

    ticks = [
        Tick(round(i * step, 1), label(start))
        for i, start in enumerate(starts)
        # Labels are centred on their minute: none so close to an edge that it would be cut.
        if minute_of_day(start) % tick_minutes == 0 and 16 <= i * step <= WIDTH - 16
    ]
    if minutes <= 120:
        bars = [
            Bar(
                x=round(i * step + 1, 1),
                y=round(PLOT_HEIGHT - value * scale, 1),
                width=round(max(step - 2, 1), 1),
                height=round(value * scale, 1),
                title=f"{label(start)}: {value:,} sent",
            )
            for i, (start, value) in enumerate(zip(starts, values, strict=True))
        ]
        return SendRateChart(bars=bars, area="", ticks=ticks, peak=peak, total=sum(values))
    points = " ".join(
        f"L{round(i * step, 1)},{round(PLOT_HEIGHT - value * scale, 1)}" for i, value in enumerate(values)
    )
    area = f"M0,{PLOT_HEIGHT} {points} L{WIDTH},{PLOT_HEIGHT} Z"
    return SendRateChart(bars=[], area=area, ticks=ticks, peak=peak, total=sum(values))


@dataclass(frozen=True, slots=True)
class StatusShare:
    """One status's part of a mailing: its count, and where its segment lies on a 0-100 bar."""

    status: str
    count: int
    offset: float
    share: float


def status_shares(by_status: StatusCounts, total: int) -> list[StatusShare]:
    shares = []
    offset = 0.0
    for status in STATUS_ORDER:
        count = getattr(by_status, status)
        share = 100 * count / total if total else 0.0
        shares.append(StatusShare(status, count, round(offset, 3), round(share, 3)))
        offset += share
    return shares
