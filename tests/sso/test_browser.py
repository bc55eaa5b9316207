"""Single sign-on in a real browser (Debian's Chromium) against a real OpenID provider in this
process (oidc-provider-mock, where a person picks who signs in): an admin, a viewer and a stranger,
each the whole way through the redirects, and the admin's sign-out at the provider too."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from litestar import Litestar
from oidc_provider_mock import User, run_server_in_thread
from playwright.sync_api import Browser, Page, expect

from notification.app import create_app
from notification.config import Settings, load_settings
from tests.browser import local_page
from tests.servers import serve_in_thread

ADMIN = "admin@example.com"
VIEWER = "viewer@example.com"
STRANGER = "stranger@example.org"


@pytest.fixture
def provider_url() -> Iterator[str]:
    people = [User(sub=email, claims={"email": email, "email_verified": True}) for email in (ADMIN, VIEWER, STRANGER)]
    with run_server_in_thread(user_claims=people) as server:
        yield f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
def settings(database_url: str, provider_url: str, tmp_path: Path) -> Settings:
    return replace(
        load_settings({}),
        database_url=database_url,
        log_level="WARNING",
        data_dir=tmp_path,
        oidc_issuer=provider_url,
        oidc_client_id="notification-console",
        oidc_client_secret="browser-test-secret",
        admin_emails=(ADMIN,),
        viewer_emails=("@example.com",),
    )


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


def _sign_in_as(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/admin/clients")
    assert urlsplit(page.url).path == "/admin/sign-in"
    page.click("#sso")
    page.locator(f"button[name=sub][value='{email}']").click()


def test_an_admin_a_viewer_and_a_stranger_sign_in_through_the_provider(
    browser: Browser, app: Litestar, provider_url: str
) -> None:
    with serve_in_thread(app) as base:
        with local_page(browser, base, also_reach=[provider_url]) as admin:
            _sign_in_as(admin, base, ADMIN)
            expect(admin.locator("h1")).to_have_text("Clients")
            expect(admin.locator("header")).to_contain_text(f"{ADMIN} (admin)")
            expect(admin.locator("a", has_text="Add a client")).to_be_visible()
            admin.click("button:has-text('Sign out')")
            admin.click("button:has-text('End session')")
            expect(admin.locator("h1")).to_have_text("Sign in to the console")
            admin.goto(f"{base}/admin/audit")
            assert urlsplit(admin.url).path == "/admin/sign-in"

        with local_page(browser, base, also_reach=[provider_url]) as viewer:
            _sign_in_as(viewer, base, VIEWER)
            expect(viewer.locator("h1")).to_have_text("Clients")
            expect(viewer.locator("header")).to_contain_text(f"{VIEWER} (viewer)")
            expect(viewer.locator("a", has_text="Add a client")).to_have_count(0)
            expect(viewer.locator("a", has_text="Import a CSV file")).to_have_count(0)
            viewer.click("nav >> text=Mailings")
            expect(viewer.locator("a", has_text="New mailing")).to_have_count(0)
            # The audit log shows the admin's visit and this one.
            viewer.click("nav >> text=Audit log")
            rows = viewer.locator("#audit-rows tbody tr")
            expect(rows).to_have_count(3)
            expect(rows.nth(0)).to_contain_text(f"{VIEWER} console sign-in session")
            expect(rows.nth(1)).to_contain_text(f"{ADMIN} console sign-out")
            expect(rows.nth(2)).to_contain_text(f"{ADMIN} console sign-in")

        with local_page(browser, base, also_reach=[provider_url]) as stranger:
            _sign_in_as(stranger, base, STRANGER)
            expect(stranger.locator("h1")).to_have_text("No access")
            expect(stranger.locator("#sign-in-problem")).to_have_text(
                f"{STRANGER} has no access to this console. Ask an administrator to add it."
            )
            expect(stranger.locator("nav")).to_have_count(0)
            stranger.goto(f"{base}/admin")
            assert urlsplit(stranger.url).path == "/admin/sign-in"
