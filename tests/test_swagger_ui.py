"""Swagger UI in a real browser, with no network beyond the app: it lists every operation and
calls the API with the token a person types into its Authorize dialog."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests import browser as browser_module
from tests.browser import local_page
from tests.conftest import API_TOKEN


def test_swagger_ui_lists_every_operation_without_loading_anything_from_elsewhere(page: Page) -> None:
    page.goto("/docs")

    # One block per operation of the document the page read: none missing, none invented.
    document = page.evaluate("async () => (await fetch('/docs/openapi.json')).json()")
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    documented = sum(1 for operations in document["paths"].values() for method in operations if method in methods)
    assert documented >= 19
    operations = page.locator(".opblock")
    expect(operations).to_have_count(documented)
    expect(page.locator(".info .title")).to_contain_text("notification")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/mailings/{mailing_id}/stats")).to_be_visible()
    expect(
        page.locator(".opblock-summary-description", has_text="Add many clients at once, all or none")
    ).to_be_visible()


def test_swagger_ui_calls_the_api_with_the_token_typed_into_authorize(page: Page) -> None:
    page.goto("/docs")
    page.get_by_role("button", name=re.compile("Authorize")).first.click()
    page.get_by_label("auth-bearer-value").fill(API_TOKEN)
    page.get_by_role("button", name="Apply credentials").click()
    page.locator(".modal-ux").get_by_role("button", name="Close").click()

    operation = page.locator("#operations-clients-ApiV1ClientsListClients")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()

    live = operation.locator(".live-responses-table .response")
    expect(live.locator(".response-col_status")).to_have_text("200")
    expect(live.locator(".response-col_description")).to_contain_text('"total": 0')


def test_a_page_that_reaches_for_another_host_fails_the_test(browser: Browser, live_server: str) -> None:
    refused = r"other hosts: \['GET https://example\.com/swagger-ui\.css'\]"
    with pytest.raises(AssertionError, match=refused), local_page(browser, live_server) as page:  # noqa: PT012
        page.goto("/docs")
        page.evaluate("fetch('https://example.com/swagger-ui.css').catch(() => null)")


def test_without_chromium_browser_tests_skip_except_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser_module, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium"):
        browser_module.require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI runs the browser tests"):
        browser_module.require_chromium()
