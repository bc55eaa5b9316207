"""A schedule made in the console in a real browser: the form shows its next occurrences, the
schedule page its occurrences, and an occurrence opens as the mailing it is."""

from __future__ import annotations

import asyncio
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from procrastinate import App

from notification.config import Settings
from notification.jobs import create_connector
from notification.schedules.tasks import create_occurrences_now
from tests.api import API_TOKEN


@pytest.fixture
def page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Moscow", locale="en-US")
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


async def _look(settings: Settings) -> None:
    """What the worker does once a minute, done now."""
    queue = App(connector=create_connector(settings, max_size=1))
    async with queue.open_async():
        await create_occurrences_now(settings, queue)


def test_a_schedule_is_created_from_the_form_and_its_occurrence_opened(
    page: Any, served: str, settings: Settings
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{served}/admin")
    assert urlsplit(page.url).path == "/admin/sign-in"
    page.fill("#token", API_TOKEN)
    page.click("button:has-text('Sign in')")
    page.locator("h1", has_text="Dashboard").wait_for()

    page.click("nav >> text=Schedules")
    page.click("text=New schedule")
    # Every day at this minute, Moscow time, for 7 days: the first occurrence has just begun.
    now = dt.datetime.now(ZoneInfo("Europe/Moscow")).replace(second=0, microsecond=0)
    page.fill("#name", "Daily deals")
    page.fill("#text", "Deals of the day")
    page.fill("#starts", now.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#timezone", "Europe/Moscow")
    page.fill("#duration_minutes", "60")
    page.fill("#rrule", "FREQ=DAILY;COUNT=7")
    page.locator("#rrule").dispatch_event("change")
    upcoming = page.locator("#next-occurrences li")
    expect(upcoming).to_have_count(5)
    tomorrow = (now + dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    expect(upcoming.first).to_contain_text(f"{tomorrow} Europe/Moscow")
    page.click("button:has-text('Create schedule')")
    page.locator("h1", has_text="Daily deals").wait_for()
    expect(page.locator("#schedule-status")).to_have_text("active")

    # The served worker would create it within a minute; the test looks at once, in a thread of its
    # own (Playwright's sync API holds this thread's event loop).
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _look(settings)).result(timeout=60)
    page.reload()
    occurrence = page.locator("#occurrence-rows tbody tr").first
    expect(occurrence).to_contain_text(now.strftime("%Y-%m-%d %H:%M"))
    occurrence.locator("a").click()
    page.locator("h1", has_text="Mailing").wait_for()
    expect(page.locator("#mailing-text")).to_have_text("Deals of the day")
    page.click("#schedule-link")
    page.locator("h1", has_text="Daily deals").wait_for()
