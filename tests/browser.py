"""A real browser for tests: Debian's Chromium driven by Playwright, and pages that may talk to the
app under test only. Fixtures ``browser`` and ``page`` (tests/conftest.py) build on these.

Playwright never downloads a browser here: it drives /usr/bin/chromium. Where that is missing the
browser tests skip, except under CI (``CI`` set), where they fail: CI must run them."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def require_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"{CHROMIUM} is missing (apt-get install -y chromium; .ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"CI runs the browser tests, but {reason}")
    pytest.skip(f"browser test: {reason}")


@contextmanager
def launched_chromium() -> Iterator[Browser]:
    executable = require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def local_page(
    browser: Browser, base_url: str, also_reach: Sequence[str] = (), **context_options: Any
) -> Iterator[Page]:
    """A page of a fresh context that reaches ``base_url``'s host only: a request anywhere else is
    refused, and the test fails when the page closes, naming each such request. ``also_reach``
    names other local services the browser is sent to (a local OpenID provider): their pages are
    not ours, so what they load from elsewhere is refused without failing the test.
    ``context_options`` go to the browser context (viewport, time zone, locale...)."""
    app_host = urlsplit(base_url).netloc
    allowed = {app_host, *(urlsplit(url).netloc for url in also_reach)}
    elsewhere: list[str] = []

    def only_local(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in {"data", "blob"} or urlsplit(url).netloc in allowed:
            route.continue_()
            return
        if urlsplit(route.request.frame.url).netloc in allowed - {app_host}:
            route.abort()
            return
        elsewhere.append(f"{route.request.method} {url}")
        route.abort()

    context = browser.new_context(base_url=base_url, **context_options)
    context.route("**/*", only_local)
    try:
        yield context.new_page()
    finally:
        context.close()
    assert not elsewhere, f"the page tried to load from other hosts: {elsewhere}"
