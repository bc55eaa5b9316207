"""`notification dev` on a fresh clone: it runs a local OpenID provider, prints how to sign in, and
the address it prints signs in to the console as an admin, through the provider, over HTTP."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable

import httpx

from tests.test_dev_command import DevRun


def test_dev_prints_how_to_sign_in_and_that_address_gets_in(dev_runs: Callable[[], DevRun]) -> None:
    run = dev_runs()
    run.wait_ready()
    console = run.console()
    base = f"http://127.0.0.1:{run.port}"
    assert f"sign-in     http://127.0.0.1:{run.oidc_port} (local OpenID provider)" in console
    assert "then click one of: admin@localhost" in console
    assert "admins      admin@localhost" in console

    with httpx.Client(timeout=10) as browser:
        started = browser.get(f"{base}/admin/sign-in/sso", params={"next": "/admin/reports"})
        authorization = started.headers["location"]
        assert authorization.startswith(f"http://127.0.0.1:{run.oidc_port}/")
        assert "admin@localhost" in browser.get(authorization).text
        back = browser.post(authorization, data={"sub": "admin@localhost"})
        signed_in = browser.get(back.headers["location"])
        assert signed_in.headers["location"] == "/admin/reports"
        reports = browser.get(f"{base}/admin/reports")
        assert reports.status_code == 200
        assert "admin@localhost (admin)" in reports.text
        # dev's own mailbox is there from the start: the page of reports received shows. Started after
        # today's report time, dev's worker may already have sent today's report to it.
        assert "<h1>Reports received</h1>" in reports.text
        assert "No report received yet." in reports.text or 'class="panel report"' in reports.text
        csrf = re.search(r'"x-csrftoken": "([^"]+)"', reports.text)
        assert csrf
        out = browser.post(f"{base}/admin/sign-out", data={"_csrf_token": csrf.group(1)})
        assert out.headers["location"].startswith(f"http://127.0.0.1:{run.oidc_port}/oauth2/end_session?")

    assert run.process is not None
    os.killpg(run.process.pid, signal.SIGINT)
    assert run.wait_exit() == 0
    assert "AuthlibDeprecationWarning" not in run.console()
