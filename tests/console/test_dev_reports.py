"""The console's page of the daily reports the development mailbox received (issue 12): admins only,
and only where that mailbox exists."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from notification.config import Settings
from notification.reports.mailbox import dev_mail_dir
from notification.reports.rendering import SUBJECT_PREFIX
from tests.console_client import Console, become_viewer


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return replace(settings, data_dir=tmp_path)


def _receive(mailbox: Path, name: str, subject: str, body: str, sent: dt.datetime) -> None:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = "notification@localhost"
    message["To"] = "operators@localhost"
    message["Date"] = format_datetime(sent)
    message.set_content(body)
    message.add_alternative(f"<p>{body}</p>", subtype="html")
    mailbox.mkdir(parents=True, exist_ok=True)
    (mailbox / name).write_bytes(message.as_bytes())


async def test_admins_read_the_last_reports_received(console: Console, settings: Settings) -> None:
    mailbox = dev_mail_dir(settings)
    day = dt.datetime(2026, 11, 30, 5, 30, tzinfo=dt.UTC)
    _receive(mailbox, "20261130T053000.000000Z-1.eml", f"{SUBJECT_PREFIX} 2026-11-29", "Sent 120 of 130.", day)
    _receive(mailbox, "20261201T053000.000000Z-2.eml", "Something else", "Not a report.", day)
    _receive(
        mailbox,
        "20261201T053000.000000Z-3.eml",
        f"{SUBJECT_PREFIX} 2026-11-30",
        "Sent 7 of 9.\nDelivery rate 77.8 %",
        day + dt.timedelta(days=1),
    )

    dashboard = await console.get("/admin")
    page = await console.get("/admin/reports")

    assert '<a href="/admin/reports"' in dashboard.text
    assert page.status_code == 200
    assert page.text.count('<section class="panel report">') == 2
    newest, older = page.text.index("2026-11-30</h2>"), page.text.index("2026-11-29</h2>")
    assert newest < older
    assert "Sent 7 of 9.\nDelivery rate 77.8 %" in page.text
    assert "Not a report." not in page.text


async def test_the_page_is_empty_before_any_report_and_absent_without_the_mailbox(
    console: Console, settings: Settings
) -> None:
    assert (await console.get("/admin/reports")).status_code == 404
    assert "/admin/reports" not in (await console.get("/admin")).text

    dev_mail_dir(settings).mkdir()

    page = await console.get("/admin/reports")
    assert page.status_code == 200
    assert "No report received yet." in page.text


async def test_viewers_do_not_see_the_reports(console: Console, settings: Settings, db: AsyncSession) -> None:
    dev_mail_dir(settings).mkdir()
    await become_viewer(console, db)

    assert "/admin/reports" not in (await console.get("/admin")).text
    assert (await console.get("/admin/reports")).status_code == 403
