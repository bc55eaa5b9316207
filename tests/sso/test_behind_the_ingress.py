"""A request as the Kubernetes ingress hands it on, with the manifests' own settings: HTTPS is
recognised from X-Forwarded-Proto sent by a trusted proxy address, so cookies are Secure, HSTS is
sent and the single sign-on redirect URI is the public https one; the client address is the
forwarded one, and an address outside the trusted proxies cannot claim another."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from notification.app import create_app
from notification.config import Settings, load_settings
from notification.security.headers import HSTS

CONFIGMAP = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "configmap.yaml"
INGRESS_POD = ("10.42.0.7", 50123)  # inside the manifests' trusted pod network
ELSEWHERE = ("192.0.2.50", 50124)  # outside it
BROWSER = "203.0.113.9"


def _as_deployed(settings: Settings) -> Settings:
    manifest = yaml.safe_load(CONFIGMAP.read_text())["data"]
    deployed = load_settings(manifest)
    return replace(
        deployed,
        database_url=settings.database_url,
        api_tokens=settings.api_tokens,
        oidc_issuer=settings.oidc_issuer,
        oidc_client_id=settings.oidc_client_id,
        oidc_client_secret=settings.oidc_client_secret,
        admin_emails=settings.admin_emails,
        data_dir=settings.data_dir,
        log_level="WARNING",
    )


def _through(settings: Settings, client: tuple[str, int]) -> httpx.AsyncClient:
    # What `serve` does: uvicorn's proxy headers, trusting NOTIFICATION_TRUSTED_PROXIES only.
    app = ProxyHeadersMiddleware(create_app(settings), trusted_hosts=",".join(settings.trusted_proxies))
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://notification-api")


async def test_a_proxied_https_request_gets_secure_cookies_hsts_and_an_https_redirect_uri(
    settings: Settings, db: AsyncSession
) -> None:
    deployed = _as_deployed(settings)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": BROWSER, "Host": "notification-api"}
    async with _through(deployed, INGRESS_POD) as ingress:
        started = await ingress.get("/admin/sign-in/sso", headers=forwarded)
        assert started.status_code == 303, started.text
        query = parse_qs(urlsplit(started.headers["location"]).query)
        assert query["redirect_uri"] == ["https://notification.example.com/admin/sign-in/callback"]
        assert started.headers["strict-transport-security"] == HSTS
        cookies = started.headers.get_list("set-cookie")
        assert cookies
        assert all("; Secure" in cookie for cookie in cookies), cookies
        docs = await ingress.get("/api/v1/clients", headers={**forwarded, "Authorization": "Bearer " + "x" * 40})
        assert docs.status_code == 401
        assert docs.headers["x-content-type-options"] == "nosniff"

    async with _through(deployed, ELSEWHERE) as stranger:
        claimed = {"X-Forwarded-For": "203.0.113.10", "Authorization": "Bearer " + "x" * 40}
        assert (await stranger.get("/api/v1/clients", headers=claimed)).status_code == 401

    # The throttle counted the browser behind the ingress, and the stranger as itself.
    rows = (await db.execute(text("SELECT address FROM sign_in_failures ORDER BY address"))).scalars().all()
    assert rows == ["192.0.2.50", BROWSER]
