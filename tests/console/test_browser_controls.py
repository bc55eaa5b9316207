"""The operator controls of a mailing in a real browser (Debian's Chromium driven by Playwright),
against a real worker and the fake provider: pause then resume, retry, a test send, the audience
preview, the text's parts as it is typed, and the message list filling in as the mailing sends."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from notification.app import create_app
from notification.config import Settings
from notification.dev.fake_provider import RunningFakeProvider
from tests.conftest import API_TOKEN
from tests.servers import serve_in_thread
from tests.workers import WorkerProcess

SALE = "Скидка 20% для своих — только сегодня! Ответьте STOP, чтобы отписаться."
CLIENTS = 12


@pytest.fixture
def served(settings: Settings, provider: RunningFakeProvider, tmp_path: Path) -> Iterator[str]:
    """As the console's own fixture, with the app's test sends going to the fake provider too."""
    to_fake = replace(settings, provider_url=provider.base_url)
    worker = WorkerProcess(to_fake, provider.base_url, tmp_path / "worker.log")
    try:
        with serve_in_thread(create_app(to_fake)) as base_url:
            yield base_url
    finally:
        worker.stop()


@pytest.fixture
def page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Moscow", locale="en-US")
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def _api(served: str, method: str, path: str, **kwargs: Any) -> Any:
    answer = httpx.request(
        method, f"{served}/api/v1{path}", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10, **kwargs
    )
    assert answer.is_success, answer.text
    return answer.json() if answer.content else None


def _clients(served: str, count: int = CLIENTS) -> None:
    rows = [{"phone": str(79_160_000_100 + i), "timezone": "Europe/Moscow", "tag": "vip"} for i in range(count)]
    _api(served, "POST", "/clients/bulk", json=rows)


def _mailing(served: str, start: dt.datetime, end: dt.datetime, text: str = "Spring sale") -> int:
    body = {"text": text, "kind": "service", "start_at": start.isoformat(), "end_at": end.isoformat()}
    return int(_api(served, "POST", "/mailings", json=body)["id"])


def _sign_in(page: Any, served: str) -> None:
    page.goto(f"{served}/admin")
    page.fill("#token", API_TOKEN)
    page.click("button:has-text('Sign in')")
    page.locator("h1", has_text="Dashboard").wait_for()


def _shot(page: Any, screenshots: Path | None, name: str, selector: str | None = None) -> None:
    if screenshots is None:
        return
    path = str(screenshots / f"console-{name}.png")
    if selector is None:
        page.screenshot(path=path, full_page=True)
    else:
        page.locator(selector).screenshot(path=path)


def _eventually(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def test_pause_then_resume_asks_first_and_shows_the_status(page: Any, served: str, screenshots: Path | None) -> None:
    from playwright.sync_api import expect

    _clients(served)
    mailing_id = _mailing(served, _now() + dt.timedelta(hours=1), _now() + dt.timedelta(hours=2))
    _sign_in(page, served)
    page.goto(f"{served}/admin/mailings/{mailing_id}")
    expect(page.locator("#mailing-status")).to_have_text("scheduled")
    _shot(page, screenshots, "controls", "#controls")

    page.click("#pause")
    expect(page.locator("h1")).to_have_text(f"Pause mailing {mailing_id}?")
    expect(page.locator("#consequence")).to_contain_text("No new message of it starts within a second")
    _shot(page, screenshots, "pause-confirm")
    page.click("#confirm")
    expect(page.locator(".flash")).to_contain_text(f"Mailing {mailing_id} paused")
    expect(page.locator("#mailing-status")).to_have_text("paused")
    expect(page.locator("#pause")).to_have_count(0)

    page.click("#resume")
    expect(page.locator("h1")).to_have_text(f"Resume mailing {mailing_id}?")
    page.click("#confirm")
    expect(page.locator(".flash")).to_have_text(f"Mailing {mailing_id} resumed.")
    expect(page.locator("#mailing-status")).to_have_text("scheduled")
    expect(page.locator("#pause")).to_be_visible()
    actions = [entry["action"] for entry in _api(served, "GET", "/audit", params={"entity_id": mailing_id})["items"]]
    assert sorted(actions) == ["create", "pause", "resume"]


def test_retry_of_an_ended_mailing_takes_a_new_end_and_sends_again(
    page: Any, served: str, settings: Settings, provider: RunningFakeProvider, screenshots: Path | None
) -> None:
    from playwright.sync_api import expect

    _clients(served)
    mailing_id = _mailing(served, _now() - dt.timedelta(hours=3), _now() - dt.timedelta(hours=1))
    with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO messages (mailing_id, client_id, status, attempts, last_error, error_kind)"
            " SELECT %s, id, 'failed', 1, 'HTTP 400: rejected', 'http_4xx' FROM clients",
            (mailing_id,),
        )
    _sign_in(page, served)
    page.goto(f"{served}/admin/mailings/{mailing_id}")
    expect(page.locator("#error-kinds td").nth(0)).to_have_text("http_4xx")
    expect(page.locator("#error-kinds td").nth(1)).to_have_text(str(CLIENTS))
    page.click("#retry")
    expect(page.locator(".hint", has_text="a retry needs a new end")).to_be_visible()
    assert page.input_value("#end_at"), "an ended mailing's retry offers a new end"
    _shot(page, screenshots, "retry")
    page.click("#confirm")
    expect(page.locator(".flash")).to_have_text(f"{CLIENTS} messages of mailing {mailing_id} will be sent again.")
    expect(page.locator("#sent-share")).to_have_text("100 % sent", timeout=60_000)
    expect(page.locator("#mailing-status")).to_have_text("finished")
    assert provider.received().total_accepted == CLIENTS


def test_a_test_send_shows_the_providers_answer(
    page: Any, served: str, provider: RunningFakeProvider, screenshots: Path | None
) -> None:
    from playwright.sync_api import expect

    mailing_id = _mailing(served, _now() + dt.timedelta(hours=1), _now() + dt.timedelta(hours=2), SALE)
    _sign_in(page, served)
    page.goto(f"{served}/admin/mailings/{mailing_id}")
    page.fill("#test-phone", "123")
    page.click("button:has-text('Send a test now')")
    expect(page.locator("#error-phone")).to_contain_text("Expected str of length >= 11")
    page.fill("#test-phone", "79160000009")
    page.click("button:has-text('Send a test now')")
    answer = page.locator("#test-send-answer")
    expect(answer).to_contain_text("Sent to 79160000009: the provider answered HTTP 200")
    expect(answer).to_contain_text("UCS-2, 2 parts")
    assert provider.received().total_accepted == 1
    _shot(page, screenshots, "test-send", "#controls")


def test_the_preview_before_and_after_creating_a_mailing(page: Any, served: str, screenshots: Path | None) -> None:
    from playwright.sync_api import expect

    _clients(served)
    _sign_in(page, served)
    page.goto(f"{served}/admin/mailings/new")
    page.click("#preview-button")
    expect(page.locator("#preview-problems")).to_contain_text("text: ")
    page.fill("#text", SALE)
    page.fill("#window_start", "09:00")
    page.fill("#window_end", "21:00")
    page.click("#preview-button")
    expect(page.locator("#preview-clients")).to_have_text(str(CLIENTS))
    expect(page.locator("#preview-sms")).to_have_text("UCS-2, 71 units, 2 parts per message")
    expect(page.locator("#preview-parts-total")).to_have_text(str(2 * CLIENTS))
    expect(page.locator("#preview-timezones tbody td").nth(0)).to_have_text("Europe/Moscow")
    expect(page.locator("#preview-timezones tbody td").nth(1)).to_have_text(str(CLIENTS))
    expect(page.locator("#preview-outside")).to_have_text(str(CLIENTS if not 9 <= _moscow_hour() < 21 else 0))
    _shot(page, screenshots, "form-preview", "main form")

    page.click("button:has-text('Create mailing')")
    expect(page.locator(".flash")).to_contain_text("created.")
    page.click("#audience-preview button")
    expect(page.locator("#preview-clients")).to_have_text(str(CLIENTS))
    expect(page.locator("#preview-parts-total")).to_have_text(str(2 * CLIENTS))
    assert urlsplit(page.url).path.startswith("/admin/mailings/")


def _moscow_hour() -> int:
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=3))).hour


def test_parts_on_the_form_follow_the_text_as_it_is_typed(page: Any, served: str, screenshots: Path | None) -> None:
    from playwright.sync_api import expect

    _clients(served)
    _sign_in(page, served)
    measured: list[str] = []
    page.on("request", lambda request: measured.append(request.url) if request.url.endswith("/measure") else None)
    page.goto(f"{served}/admin/mailings/new")
    expect(page.locator("#text-cost")).to_have_text("Type a text to see what it costs.")
    page.locator("#text").press_sequentially("Hello", delay=20)
    expect(page.locator("#text-encoding")).to_have_text("GSM-7")
    expect(page.locator("#text-parts")).to_have_text("1 part")
    page.fill("#text", "")
    loaded = len(measured)
    page.locator("#text").press_sequentially(SALE, delay=15)
    expect(page.locator("#text-encoding")).to_have_text("UCS-2")
    expect(page.locator("#text-parts")).to_have_text("2 parts")
    expect(page.locator("#text-parts-total")).to_have_text(f"{2 * CLIENTS} parts")
    # Debounced: far fewer requests than the 71 keystrokes.
    assert len(measured) - loaded < 20, measured
    page.check("#tags >> text=vip")
    expect(page.locator("#text-parts-total")).to_have_text(f"{2 * CLIENTS} parts")
    page.fill("#text", "Short")
    page.locator("#text").dispatch_event("input")
    expect(page.locator("#text-parts")).to_have_text("1 part")
    expect(page.locator("#text-parts-total")).to_have_text(f"{CLIENTS} parts")
    page.fill("#text", SALE)
    page.locator("#text").dispatch_event("input")
    expect(page.locator("#text-parts")).to_have_text("2 parts")
    _shot(page, screenshots, "form-parts", "main form")


def test_the_message_list_fills_in_as_the_mailing_sends(
    page: Any, served: str, tmp_path: Path, screenshots: Path | None
) -> None:
    from playwright.sync_api import expect

    _clients(served)
    start = _now() + dt.timedelta(seconds=6)
    mailing_id = _mailing(served, start, start + dt.timedelta(hours=1))
    _sign_in(page, served)
    page.goto(f"{served}/admin/mailings/{mailing_id}")
    expect(page.locator("#message-rows tbody")).to_contain_text("No messages")
    page.evaluate("window.notReloaded = true")

    expect(page.locator("#message-rows tbody tr[data-message-id]")).to_have_count(CLIENTS, timeout=60_000)
    expect(page.locator("#mailing-status")).to_have_text("finished", timeout=60_000)
    expect(page.locator("#message-rows .badge.sent")).to_have_count(CLIENTS)
    expect(page.locator("#messages .tabs a.active")).to_contain_text(f"all {CLIENTS}")
    assert page.evaluate("window.notReloaded") is True, "the list refreshed in place, not by a reload"
    _eventually(
        lambda: "mailing finished" in (tmp_path / "worker.log").read_text(errors="replace"),
        timeout_s=10,
        what="the worker says the mailing finished",
    )
    _shot(page, screenshots, "mailing-live")
