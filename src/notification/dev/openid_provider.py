"""The OpenID provider ``notification dev`` runs when none is configured: oidc-provider-mock (a
development dependency, never in the image), where a person picks an address to sign in as. The
service is configured for it through the environment, as for a real one."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import warnings
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from notification.config import PREFIX, Settings

DEV_ADMIN = "admin@localhost"
DEV_CLIENT_ID = "notification-dev"


@dataclass
class DevProvider:
    issuer: str
    people: list[str]
    """Addresses shown on the provider's page, one click each (their email marked verified)."""
    running: AbstractContextManager[Any]

    def stop(self) -> None:
        # The mock waits a second for its server thread, then says so: it is stopping anyway.
        with contextlib.suppress(TimeoutError):
            self.running.__exit__(None, None, None)


def start_dev_provider(settings: Settings, port: int) -> DevProvider | None:
    """Unless an issuer is configured: the local provider, made the console's (and an admin address
    made up when none is set)."""
    if settings.oidc_issuer:
        return None
    with warnings.catch_warnings():
        # It imports authlib's older JOSE module, which warns on import: nothing the service uses.
        warnings.simplefilter("ignore", DeprecationWarning)
        from oidc_provider_mock import User, run_server_in_thread

    os.environ.setdefault(f"{PREFIX}ADMIN_EMAILS", DEV_ADMIN)
    admins = os.environ[f"{PREFIX}ADMIN_EMAILS"].split(",")
    named = [
        e.strip().lower() for e in [*admins, *settings.viewer_emails] if e.strip() and not e.strip().startswith("@")
    ]
    people = list(dict.fromkeys(named))
    # Its request lines would fill the terminal `dev` prints to.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    running = run_server_in_thread(
        port=port, user_claims=[User(sub=email, claims={"email": email, "email_verified": True}) for email in people]
    )
    server = running.__enter__()
    issuer = f"http://127.0.0.1:{server.server_port}"
    os.environ[f"{PREFIX}OIDC_ISSUER"] = issuer
    os.environ[f"{PREFIX}OIDC_CLIENT_ID"] = DEV_CLIENT_ID
    os.environ[f"{PREFIX}OIDC_CLIENT_SECRET"] = secrets.token_urlsafe(16)
    return DevProvider(issuer=issuer, people=people, running=running)


def dev_provider_banner(provider: DevProvider, console_url: str) -> list[str]:
    """What ``notification dev`` prints about signing in."""
    admins = os.environ.get(f"{PREFIX}ADMIN_EMAILS", "")
    return [
        f"  sign-in     {provider.issuer} (local OpenID provider): open {console_url}, choose",
        "              'Sign in with single sign-on', then click one of: " + ", ".join(provider.people),
        f"  admins      {admins} ({PREFIX}ADMIN_EMAILS; viewers: {PREFIX}VIEWER_EMAILS)",
    ]
