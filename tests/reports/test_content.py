"""The report of a prepared day, received by a real SMTP server: every figure equals a direct SQL
count, in the text part and in the HTML part alike."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser
from typing import Any

import psycopg
import pytest

from notification.config import Settings
from notification.reports.content import build_report
from notification.reports.sending import send_report
from tests.reports.conftest import RECIPIENT, SENDER, Day, RecordingHandler

TZ = "America/New_York"
D = dt.date(2026, 3, 10)  # EDT, UTC-4: the local day is 04:00Z to 04:00Z the next day
BEFORE, AFTER = D - dt.timedelta(days=1), D + dt.timedelta(days=1)
LONG_TEXT = "Spring sale: every umbrella, raincoat and pair of boots at half price until Friday"
NOW = dt.datetime(2026, 3, 11, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
async def day(conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    """Eight mailings around D, with messages in every status; returns their ids by name."""
    d = Day(conn, TZ)
    ids = {
        "spring": await d.mailing(LONG_TEXT, d.at(D, "09:00"), d.at(D, "18:00")),
        "night": await d.mailing("Night owls\nget 2 for 1", d.at(BEFORE, "20:00"), d.at(AFTER, "12:00")),
        "yesterday": await d.mailing("Ends as the day begins", d.at(BEFORE, "08:00"), d.at(D, "00:00")),
        "tomorrow": await d.mailing("Starts as the day ends", d.at(AFTER, "00:00"), d.at(AFTER, "10:00")),
        "unplanned": await d.mailing("Not planned yet", d.at(D, "22:00"), d.at(AFTER, "06:00")),
        "delivered": await d.mailing("All <b>delivered</b> & done", d.at(D, "07:00"), d.at(D, "08:00")),
        "dawn": await d.mailing("Fails at dawn", d.at(D, "05:00"), d.at(D, "06:00")),
    }
    await d.messages(ids["spring"], "sent", 6, sent_at=d.at(D, "10:00"))
    await d.messages(ids["spring"], "failed", 2, last_error="HTTP 400: unknown phone", error_kind="http_4xx")
    await d.messages(
        ids["spring"], "expired", 2, last_error="end_at passed before it could be sent", error_kind="deadline"
    )
    await d.messages(ids["night"], "sent", 3, sent_at=d.at(BEFORE, "23:30"))
    await d.messages(ids["night"], "sent", 4, sent_at=d.at(D, "23:30"))
    await d.messages(ids["night"], "sent", 1, sent_at=d.at(AFTER, "00:30"))
    await d.messages(ids["night"], "pending", 1, last_error="timeout after 10 s", error_kind="timeout")
    await d.messages(ids["night"], "pending", 1)
    await d.messages(ids["night"], "cancelled", 1)
    await d.messages(ids["yesterday"], "sent", 5, sent_at=d.at(BEFORE, "12:00"))
    await d.messages(ids["tomorrow"], "pending", 2)
    await d.messages(ids["delivered"], "sent", 3, sent_at=d.at(D, "07:30"))
    await d.messages(ids["dawn"], "expired", 2, last_error="HTTP 503: unavailable", error_kind="http_5xx")
    await d.messages(ids["dawn"], "failed", 1, last_error="HTTP 400: unknown phone", error_kind="http_4xx")
    return ids


# The oracle: the same figures asked differently (ranges, local dates), straight from the tables.
_ORACLE_ACTIVE = """
SELECT id FROM mailings
WHERE tstzrange(start_at, end_at) && tstzrange((%(d)s::timestamp AT TIME ZONE %(tz)s),
                                              ((%(d)s + 1)::timestamp AT TIME ZONE %(tz)s))
"""
_ORACLE_COUNTS = """
SELECT mailing_id,
       count(*) AS audience,
       count(*) FILTER (WHERE status = 'sent' AND (sent_at AT TIME ZONE %(tz)s)::date = %(d)s) AS sent_that_day,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'sent') AS sent,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'expired') AS expired,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled
FROM messages WHERE mailing_id = ANY(%(ids)s) GROUP BY mailing_id
"""
COLUMNS = ("audience", "sent_that_day", "pending", "sent", "failed", "expired", "cancelled")


async def _oracle(conn: psycopg.AsyncConnection[Any]) -> dict[int, tuple[int, ...]]:
    params: dict[str, Any] = {"d": D, "tz": TZ}
    active = [row[0] for row in await (await conn.execute(_ORACLE_ACTIVE, params)).fetchall()]
    counted = {
        row[0]: tuple(row[1:])
        for row in await (await conn.execute(_ORACLE_COUNTS, {**params, "ids": active})).fetchall()
    }
    return {mailing_id: counted.get(mailing_id, (0,) * len(COLUMNS)) for mailing_id in active}


def _text_rows(text: str) -> dict[str, tuple[int, ...]]:
    """The mailing table of the text part: '#id' or 'total' -> its seven figures."""
    rows = {}
    table = text.split("Mailings active that day")[1].split("Top error kinds", maxsplit=1)[0]
    for line in table.splitlines():
        fields = line.split()
        if fields and (fields[0].startswith("#") or fields[0] == "total") and len(fields) >= 8:
            rows[fields[0]] = tuple(int(f) for f in fields[1:8])
    return rows


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.styled_cells = 0
        self.cells = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in {"td", "th"}:
            self._cell = []
            self.cells += 1
            self.styled_cells += any(name == "style" and value for name, value in attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


async def test_report_figures_equal_direct_sql_counts(
    conn: psycopg.AsyncConnection[Any], day: dict[str, int], report_settings: Settings, mail: RecordingHandler
) -> None:
    oracle = await _oracle(conn)
    assert set(oracle) == {day[n] for n in ("spring", "night", "unplanned", "delivered", "dawn")}
    # The oracle itself, on the figures laid out above.
    assert oracle[day["spring"]] == (10, 6, 0, 6, 2, 2, 0)
    assert oracle[day["night"]] == (11, 4, 2, 8, 0, 0, 1)
    assert oracle[day["unplanned"]] == (0, 0, 0, 0, 0, 0, 0)

    sent = await send_report(conn, report_settings, D, [RECIPIENT], NOW)

    assert sent.recipients == [RECIPIENT]
    [received] = mail.messages()
    assert received.recipients == [RECIPIENT]
    assert received.message["From"] == SENDER
    assert received.message["To"] == RECIPIENT
    text = received.text()
    rows = _text_rows(text)
    assert rows.pop("total") == tuple(sum(figures[i] for figures in oracle.values()) for i in range(len(COLUMNS)))
    assert rows == {f"#{mailing_id}": figures for mailing_id, figures in oracle.items()}
    assert received.message["Subject"] == "Delivery report 2026-03-10: 13 sent, 70.8 % delivered"
    # 17 sent of 24 settled (3 failed, 4 expired); pending and cancelled do not count.
    assert "delivery rate     70.8 % (sent among sent, failed and expired)" in text
    assert "sent that day     13" in text
    assert "mailings active   5" in text
    assert f"{LONG_TEXT[:60]}…" in text
    assert "Night owls get 2 for 1" in text
    kinds = text.split("Top error kinds")[1].split("Mailings that ended")[0].split()
    assert kinds[kinds.index("kind") + 2 :] == ["http_4xx", "3", "deadline", "2", "http_5xx", "2", "timeout", "1"]
    ended = text.split("Mailings that ended with messages never sent")[1]
    assert f"#{day['spring']} ended 2026-03-10 18:00: 4 never sent (pending 0, failed 2, expired 2)" in ended
    assert f"#{day['dawn']} ended 2026-03-10 06:00: 3 never sent (pending 0, failed 1, expired 2)" in ended
    assert f"#{day['delivered']}" not in ended
    assert f"#{day['night']}" not in ended

    html = received.html()
    tables = _Tables()
    tables.feed(html)
    [mailing_table] = [t for t in tables.tables if t and t[0][:2] == ["mailing", "audience"]]
    html_rows = {row[0]: tuple(int(c) for c in row[1:8]) for row in mailing_table[1:]}
    assert html_rows.pop("total") == _text_rows(text)["total"]
    assert html_rows == {f"#{mailing_id}": figures for mailing_id, figures in oracle.items()}
    assert "70.8 %" in html
    assert "All &lt;b&gt;delivered&lt;/b&gt; &amp; done" in html
    assert "<b>delivered" not in html
    for outside in ("<script", "<img", "<link", "http://", "https://", "src=", "url("):
        assert outside not in html.lower()
    assert tables.styled_cells == tables.cells > 0


async def test_a_message_belongs_to_the_local_day_it_was_sent_on(conn: psycopg.AsyncConnection[Any]) -> None:
    d = Day(conn, TZ)
    mailing = await d.mailing("Across midnight", d.at(D, "20:00"), d.at(AFTER, "03:00"))
    await d.messages(mailing, "sent", 1, sent_at=d.at(D, "23:30"))  # 03:30 UTC on the 11th
    await d.messages(mailing, "sent", 2, sent_at=d.at(AFTER, "00:30"))

    on_the_day = await build_report(conn, D, TZ, NOW)
    next_day = await build_report(conn, AFTER, TZ, NOW)

    assert [(m.mailing_id, m.sent_that_day) for m in on_the_day.mailings] == [(mailing, 1)]
    assert [(m.mailing_id, m.sent_that_day) for m in next_day.mailings] == [(mailing, 2)]
    assert on_the_day.sent_that_day == 1
    assert next_day.sent_that_day == 2
    # In UTC both sends fall on the 11th: the report's day is the local one.
    utc_day = await build_report(conn, AFTER, "UTC", NOW)
    assert utc_day.sent_that_day == 3


async def test_a_day_without_mailings_reports_zeros(conn: psycopg.AsyncConnection[Any]) -> None:
    report = await build_report(conn, D, TZ, NOW)

    assert report.mailings == []
    assert report.audience == report.sent_that_day == 0
    assert report.delivery_rate is None
    assert report.error_kinds == []


async def test_a_report_of_the_current_day_lists_as_ended_only_what_has_ended(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    d = Day(conn, TZ)
    ended = await d.mailing("Morning", d.at(D, "08:00"), d.at(D, "09:00"))
    running = await d.mailing("Evening", d.at(D, "18:00"), d.at(D, "20:00"))
    for mailing in (ended, running):
        await d.messages(mailing, "failed", 1, last_error="HTTP 400: unknown phone", error_kind="http_4xx")

    report = await build_report(conn, D, TZ, d.at(D, "12:00"))

    assert [m.mailing_id for m in report.mailings] == [ended, running]
    assert [m.mailing_id for m in report.ended_unsent] == [ended]
