"""The console in a real browser (Debian's Chromium driven by Playwright): an operator's whole
journey against a real worker and the fake provider, and nothing fetched from another host."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page

from notification.dev.fake_provider import RunningFakeProvider
from tests.browser import local_page
from tests.conftest import API_TOKEN

IMPORTED = 29
# Operator code 916 and tag vip: the mailing's audience among the imported clients and the one added by hand.
CSV_LINES = ["phone,timezone,tag,operator_code"] + [
    f"{79_160_000_100 + i},{'Europe/Moscow' if i % 3 else 'Asia/Vladivostok'},{'vip' if i % 2 else 'new'},"
    f"{'' if i % 4 else '903'}"
    for i in range(IMPORTED)
]


def _expected_audience() -> int:
    rows = [line.split(",") for line in CSV_LINES[1:]]
    return 1 + sum(1 for _, _, tag, code in rows if tag == "vip" and code == "")


@pytest.fixture
def page(browser: Browser, served: str) -> Iterator[Page]:
    """A page on the served console as an operator in Moscow sees it, reaching no other host."""
    options = {"viewport": {"width": 1280, "height": 900}, "timezone_id": "Europe/Moscow", "locale": "en-US"}
    with local_page(browser, served, **options) as opened:
        opened.set_default_timeout(15_000)
        yield opened


def _sign_in(page: Any, served: str) -> None:
    page.goto(f"{served}/admin")
    assert urlsplit(page.url).path == "/admin/sign-in"
    page.fill("#token", API_TOKEN)
    page.click("button:has-text('Sign in')")
    page.locator("h1", has_text="Dashboard").wait_for()
    assert "Europe/Moscow" in page.locator("header").inner_text()


def _shot(page: Any, screenshots: Path | None, name: str) -> None:
    if screenshots is not None:
        page.screenshot(path=str(screenshots / f"console-{name}.png"), full_page=True)


def test_an_operator_adds_clients_and_runs_a_mailing_to_the_end(
    page: Any, served: str, provider: RunningFakeProvider, screenshots: Path | None
) -> None:
    from playwright.sync_api import expect

    _sign_in(page, served)

    # One client by hand, the rest from a file.
    page.click("nav >> text=Clients")
    page.click("text=Add a client")
    page.fill("#phone", "79160000000")
    page.fill("#timezone", "Europe/Moscow")
    page.fill("#tag", "vip")
    page.click("button:has-text('Add client')")
    expect(page.locator(".flash")).to_have_text("Client 79160000000 added.")
    page.click("text=Import a CSV file")
    csv = ("\n".join(CSV_LINES) + "\n").encode()
    page.set_input_files("#file", files=[{"name": "spring.csv", "mimeType": "text/csv", "buffer": csv}])
    page.click("button:has-text('Import')")
    expect(page.locator(".flash")).to_contain_text(f"Imported {IMPORTED} clients from spring.csv")
    expect(page.locator("#matching")).to_have_text(f"{IMPORTED + 1} clients match.")
    expect(page.locator("#client-rows tr")).to_have_count(IMPORTED + 1)
    # The import answered with a whole page: its rows show while it is still being parsed, before
    # the deferred htmx has bound the filter form, and a change made then would go unheard.
    page.wait_for_load_state()
    page.select_option("#tag", "vip")
    expect(page.locator("#matching")).to_have_text(f"{(IMPORTED + 1) // 2} clients match.")
    page.select_option("#tag", "")
    expect(page.locator("#matching")).to_have_text(f"{IMPORTED + 1} clients match.")
    _shot(page, screenshots, "clients")

    # A mailing through the form: a wrong end first, refused beside the field.
    page.click("nav >> text=Mailings")
    page.click("text=New mailing")
    page.fill("#text", "Spring sale: 20 % off until Sunday")
    expect(page.locator("#text-count")).to_have_text("34 / 1,600 characters")
    page.check("#operator-codes >> text=916")
    page.check("#tags >> text=vip")
    audience = _expected_audience()
    expect(page.locator("#audience-count")).to_have_text(f"{audience} clients match this filter now")
    start = dt.datetime.fromisoformat(page.input_value("#start_at"))
    page.fill("#end_at", (start - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.click("button:has-text('Create mailing')")
    expect(page.locator("#error-end_at")).to_have_text("must be after start_at")
    expect(page.locator("#end_at")).to_be_visible()
    assert "invalid" in (page.locator("#end_at").locator("xpath=..").get_attribute("class") or "")
    expect(page.locator("#text")).to_have_value("Spring sale: 20 % off until Sunday")
    page.fill("#end_at", (start + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    page.click("button:has-text('Create mailing')")
    expect(page.locator(".flash")).to_contain_text("created.")
    mailing_id = int(urlsplit(page.url).path.rsplit("/", 1)[1])

    # Delivered while the operator watches: the page updates itself, no reload.
    expect(page.locator("#sent-share")).to_have_text("100 % sent", timeout=60_000)
    expect(page.locator("#mailing-status")).to_have_text("finished")
    expect(page.locator('#progress [data-status="sent"] strong')).to_have_text(str(audience))
    assert provider.received().total_accepted == audience

    # Its messages, each with its client.
    page.click("#messages .tabs >> text=sent")
    rows = page.locator("#message-rows tbody tr")
    expect(rows).to_have_count(audience)
    expect(page.locator("#message-rows .badge.sent")).to_have_count(audience)
    expect(page.locator("#message-rows tbody")).to_contain_text("79160000000")
    _shot(page, screenshots, "mailing")

    page.click("nav >> text=Dashboard")
    expect(page.locator('#messages-by-status tr[data-status="sent"] td').nth(1)).to_have_text(str(audience))
    expect(page.locator('#mailings-by-status tr[data-status="finished"] td').nth(1)).to_have_text("1")
    _shot(page, screenshots, "dashboard")

    # Deleting asks first, and says what it does.
    page.goto(f"{served}/admin/mailings/{mailing_id}")
    page.click("a:has-text('Delete')")
    expect(page.locator("#consequence")).to_contain_text("Nothing is waiting to be sent.")
    expect(page.locator("#consequence")).to_contain_text(f"its {audience} messages are removed")
    page.click(f"button:has-text('Delete mailing {mailing_id}')")
    expect(page.locator(".flash")).to_have_text(f"Mailing {mailing_id} deleted.")
    expect(page.locator(f'tr[data-mailing-id="{mailing_id}"]')).to_have_count(0)
    expect(page.locator("#mailing-rows")).to_contain_text("No mailings yet.")


def test_no_console_page_loads_anything_from_another_host(page: Any, served: str) -> None:
    requested: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    _sign_in(page, served)
    page.goto(f"{served}/admin/clients/new")
    page.fill("#phone", "79160000000")
    page.fill("#timezone", "UTC")
    page.click("button:has-text('Add client')")
    page.locator(".flash").wait_for()
    client_path = page.locator("a:has-text('change')").first.get_attribute("href")
    page.goto(f"{served}/admin/mailings/new")
    page.fill("#text", "Hello")
    page.locator("#audience-count", has_text="1 client match").wait_for()
    # The text's cost is measured a quarter of a second after typing stops: a click before it is
    # shown would abort that request, which this test counts as a failed load.
    page.locator("#text-cost", has_text="5 units").wait_for()
    page.click("button:has-text('Create mailing')")
    page.locator(".flash").wait_for()
    mailing_path = urlsplit(page.url).path
    paths = [
        "/admin",
        "/admin/mailings",
        mailing_path,
        f"{mailing_path}/edit",
        f"{mailing_path}/delete",
        "/admin/clients",
        str(client_path),
        str(client_path).replace("/edit", "/delete"),
        "/admin/clients/import",
        "/admin/mailings/424242",
    ]
    for path in paths:
        page.goto(f"{served}{path}")
        page.wait_for_load_state("networkidle")
    assert requested
    elsewhere = [url for url in requested if not url.startswith(f"{served}/") and not url.startswith("data:")]
    assert elsewhere == []
    # The 404 page is the one refusal expected; no script, style or policy error anywhere.
    assert [p for p in problems if "404" not in p] == []
