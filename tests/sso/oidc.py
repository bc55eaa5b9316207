"""A small OpenID provider of the tests' own, over real HTTP on 127.0.0.1, whose answers a test
scripts: it signs ID tokens with its published key or with one it never published, for another
audience, already expired, with another nonce or issuer; it answers the token request with
``invalid_grant``, a 500, an HTML page or JSON without an ID token. Everything else it does as a
provider must: discovery, JWKS, an authorization endpoint that sends the browser back with a code
and the state, a token endpoint that checks the client, the code, the redirect URI and the PKCE
verifier, and an end-session endpoint."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey
from litestar import Litestar, Request, get, post
from litestar.enums import MediaType
from litestar.response import Redirect, Response

from tests.servers import serve_in_thread

CLIENT_ID = "notification-console"
CLIENT_SECRET = "s3cret-of-the-client"

PUBLISHED_KEY = RSAKey.generate_key(2048, parameters={"kid": "published", "use": "sig", "alg": "RS256"})
# A key the provider never published, once under an unknown id and once under the published one's.
UNPUBLISHED_KEY = RSAKey.generate_key(2048, parameters={"kid": "never-published", "alg": "RS256"})
IMPOSTOR_KEY = RSAKey.import_key(UNPUBLISHED_KEY.as_dict(private=True) | {"kid": "published"})
# A key the provider rotates in: published from the moment a test says so (``FakeOpenIDProvider.rotate``).
ROTATED_KEY = RSAKey.generate_key(2048, parameters={"kid": "rotated-in", "use": "sig", "alg": "RS256"})


@dataclass
class Script:
    """What the provider answers next; every field at its default is an honest provider."""

    email: str = "ops@example.com"
    email_verified: Any = True
    token_answer: str = "tokens"  # tokens, invalid_grant, error_500, html, no_id_token
    signing_key: RSAKey = field(default_factory=lambda: PUBLISHED_KEY)
    audience: str | None = None
    expires_in: int = 300
    nonce: str | None = None
    issuer: str | None = None
    discovery: str = "ok"  # ok, html
    # RS256; "none" (no signature at all); "HS256-public" (an HMAC keyed with the published public key).
    algorithm: str = "RS256"
    # False: the ID token carries no email, which the user info endpoint then gives.
    email_in_token: bool = True
    userinfo_email_verified: Any = True


@dataclass
class Grant:
    code: str
    redirect_uri: str
    code_challenge: str
    nonce: str
    email: str
    used: bool = False


@dataclass
class FakeOpenIDProvider:
    url: str = ""
    script: Script = field(default_factory=Script)
    grants: dict[str, Grant] = field(default_factory=dict)
    token_requests: int = 0
    discovery_requests: int = 0
    jwks_requests: int = 0
    published: list[RSAKey] = field(default_factory=lambda: [PUBLISHED_KEY])
    end_session_requests: list[dict[str, str]] = field(default_factory=list)
    stop: Callable[[], None] = lambda: None
    """Takes the provider down: its port refuses connections from then on."""

    def id_token(self, grant: Grant, access_token: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.script.issuer or self.url,
            "sub": f"subject-{grant.email}",
            "aud": self.script.audience or CLIENT_ID,
            "iat": now,
            "exp": now + self.script.expires_in,
            "nonce": self.script.nonce or grant.nonce,
            "at_hash": _at_hash(access_token),
        }
        if self.script.email_in_token:
            claims |= {"email": grant.email, "email_verified": self.script.email_verified}
        key = self.script.signing_key
        if self.script.algorithm == "none":
            header = {"alg": "none", "kid": str(key.kid)}
            return f"{_b64_json(header)}.{_b64_json(claims)}."
        if self.script.algorithm == "HS256-public":
            # Keyed with the public key as published (PEM), as a verifier confusing the two would take it;
            # by hand, since joserfc refuses such a key.
            signing_input = f"{_b64_json({'alg': 'HS256', 'kid': str(PUBLISHED_KEY.kid)})}.{_b64_json(claims)}"
            mac = hmac.new(PUBLISHED_KEY.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
        return jwt.encode({"alg": "RS256", "kid": str(key.kid)}, claims, key)

    def rotate(self) -> None:
        """Publishes the rotated-in key beside the old one and signs with it from now on."""
        self.published = [PUBLISHED_KEY, ROTATED_KEY]
        self.script.signing_key = ROTATED_KEY

    def app(self) -> Litestar:
        provider = self

        @get("/.well-known/openid-configuration", media_type=MediaType.JSON)
        async def discovery() -> Any:
            provider.discovery_requests += 1
            if provider.script.discovery == "html":
                return Response("<html>maintenance</html>", media_type=MediaType.HTML)
            return {
                "issuer": provider.url,
                "authorization_endpoint": f"{provider.url}/authorize",
                "token_endpoint": f"{provider.url}/token",
                "jwks_uri": f"{provider.url}/jwks",
                "end_session_endpoint": f"{provider.url}/end-session",
                "userinfo_endpoint": f"{provider.url}/userinfo",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }

        @get("/jwks", media_type=MediaType.JSON)
        async def jwks() -> dict[str, Any]:
            provider.jwks_requests += 1
            return {"keys": [key.as_dict(private=False) for key in provider.published]}

        @get("/userinfo", media_type=MediaType.JSON)
        async def userinfo() -> dict[str, Any]:
            email = provider.script.email
            return {
                "sub": f"subject-{email}",
                "email": email,
                "email_verified": provider.script.userinfo_email_verified,
            }

        @get("/authorize")
        async def authorize(request: Request[Any, Any, Any]) -> Redirect:
            query = request.query_params
            assert query["client_id"] == CLIENT_ID
            assert query["response_type"] == "code"
            assert query["code_challenge_method"] == "S256"
            assert "openid" in query["scope"].split()
            grant = Grant(
                code=secrets.token_urlsafe(16),
                redirect_uri=query["redirect_uri"],
                code_challenge=query["code_challenge"],
                nonce=query["nonce"],
                email=provider.script.email,
            )
            provider.grants[grant.code] = grant
            answer = urlencode({"code": grant.code, "state": query["state"]})
            return Redirect(f"{grant.redirect_uri}?{answer}")

        @post("/token", media_type=MediaType.JSON)
        async def token(request: Request[Any, Any, Any]) -> Response[Any]:
            provider.token_requests += 1
            form = await request.form()
            script = provider.script
            if script.token_answer == "error_500":
                return Response({"oops": True}, status_code=500)
            if script.token_answer == "html":
                return Response("<html>not a token</html>", media_type=MediaType.HTML)
            basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            grant = provider.grants.get(str(form.get("code")))
            verifier = str(form.get("code_verifier", ""))
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if request.headers.get("authorization") != f"Basic {basic}":
                return Response({"error": "invalid_client"}, status_code=401)
            if (
                script.token_answer == "invalid_grant"
                or grant is None
                or grant.used
                or form.get("redirect_uri") != grant.redirect_uri
                or challenge != grant.code_challenge
            ):
                return Response({"error": "invalid_grant"}, status_code=400)
            grant.used = True
            access_token = secrets.token_urlsafe(24)
            answer: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer", "expires_in": 300}
            if script.token_answer != "no_id_token":
                answer["id_token"] = provider.id_token(grant, access_token)
            return Response(answer)

        @get("/end-session", media_type=MediaType.TEXT)
        async def end_session(request: Request[Any, Any, Any]) -> str:
            provider.end_session_requests.append(dict(request.query_params))
            return "signed out at the provider"

        return Litestar(route_handlers=[discovery, jwks, userinfo, authorize, token, end_session], logging_config=None)


def _b64_json(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def _at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


@contextmanager
def running_provider() -> Iterator[FakeOpenIDProvider]:
    provider = FakeOpenIDProvider()
    with ExitStack() as stack:
        provider.url = stack.enter_context(serve_in_thread(provider.app()))
        provider.stop = stack.close
        yield provider
