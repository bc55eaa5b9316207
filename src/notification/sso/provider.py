"""OpenID Connect sign-in against any provider found by discovery: the authorization code flow
with PKCE, ``state`` and ``nonce``, through authlib's async client; the ID token's signature is
checked against the provider's published keys (JWKS), and its ``iss``, ``aud``, ``exp`` and
``nonce``. Whatever goes wrong ends in a :class:`SignInFailed` that says what, in words a person
can act on; nothing here signs anyone in, it only says who the provider vouches for."""

from __future__ import annotations

import enum
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
import structlog
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

logger = structlog.get_logger(__name__)

SCOPE = "openid email profile"
# How long a started sign-in may take at the provider before its state is worth nothing.
PENDING_TTL_S = 600.0
# How long a failed discovery is remembered before the provider is asked again.
DISCOVERY_RETRY_S = 30.0
# Discovery and keys are read again after this long, and keys at once when a token names an unknown one.
METADATA_TTL_S = 3600.0
CLOCK_SKEW_S = 60
REQUEST_TIMEOUT_S = 10.0
# Public-key signatures only: "none" is no signature, and HMAC would make the client secret the key.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class Failure(enum.StrEnum):
    DENIED = "denied"
    STATE = "state"
    CODE = "code"
    UNAVAILABLE = "unavailable"
    GARBAGE = "garbage"
    UNTRUSTED = "untrusted"


FAILURE_MESSAGES = {
    Failure.DENIED: "The identity provider did not let you sign in (the request was declined there).",
    Failure.STATE: "This sign-in does not belong to this browser, was already used, or took too long."
    " Start again from the sign-in page.",
    Failure.CODE: "The identity provider no longer accepts this sign-in (it expired or was already used)."
    " Start again from the sign-in page.",
    Failure.UNAVAILABLE: "The identity provider cannot be reached right now. Try again in a moment.",
    Failure.GARBAGE: "The identity provider gave an answer that is not OpenID Connect. Nobody was signed in.",
    Failure.UNTRUSTED: "The identity provider's token could not be trusted. Nobody was signed in.",
}


class SignInFailed(Exception):
    def __init__(self, failure: Failure, detail: str) -> None:
        super().__init__(f"{failure.value}: {detail}")
        self.failure = failure
        self.detail = detail
        """For the log: what exactly went wrong (never a secret)."""

    @property
    def message(self) -> str:
        return FAILURE_MESSAGES[self.failure]


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    """A sign-in sent to the provider and not back yet: kept server-side, in the browser's session."""

    state: str
    nonce: str
    code_verifier: str
    next_page: str
    timezone: str
    started_at: float

    def expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) - self.started_at > PENDING_TTL_S

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> PendingSignIn | None:
        try:
            return cls(**raw)
        except TypeError:
            return None


@dataclass(frozen=True, slots=True)
class VouchedIdentity:
    """Who the provider says signed in, from a verified ID token (and its user info)."""

    subject: str
    email: str | None
    email_verified: bool
    id_token: str


def _verified_flag(value: Any) -> bool:
    # Some providers send the claim as a string.
    return value is True or (isinstance(value, str) and value.lower() == "true")


class OpenIDProvider:
    def __init__(self, issuer: str, client_id: str, client_secret: str) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self._metadata: dict[str, Any] | None = None
        self._metadata_read_at = 0.0
        self._discovery_failed: tuple[float, SignInFailed] | None = None
        self._keys: KeySet | None = None

    def origins(self) -> set[str]:
        """The provider's sites a console form may lead the browser to: signing in and out."""
        urls: list[Any] = [self.issuer]
        if self._metadata is not None:
            urls += [self._metadata.get("authorization_endpoint"), self._metadata.get("end_session_endpoint")]
        parts = [urlsplit(url) for url in urls if isinstance(url, str)]
        return {f"{part.scheme}://{part.netloc}" for part in parts if part.scheme in {"http", "https"} and part.netloc}

    def _client(self, **kwargs: Any) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self.client_secret or None,
            token_endpoint_auth_method="client_secret_basic" if self.client_secret else "none",
            scope=SCOPE,
            code_challenge_method="S256",
            timeout=REQUEST_TIMEOUT_S,
            **kwargs,
        )

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self._client() as client:
                response = await client.request("GET", url, withhold_token=True)
        except httpx2.HTTPError as exc:
            raise SignInFailed(Failure.UNAVAILABLE, f"{what}: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise SignInFailed(Failure.UNAVAILABLE, f"{what}: HTTP {response.status_code}")
        try:
            body = response.json() if response.status_code == 200 else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SignInFailed(Failure.GARBAGE, f"{what}: HTTP {response.status_code}, not a JSON object")
        return body

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document, read again at most every hour."""
        if self._metadata is not None and time.monotonic() - self._metadata_read_at < METADATA_TTL_S:
            return self._metadata
        # A provider that just failed is not asked again at once: each anonymous sign-in start would
        # otherwise wait up to the request timeout on it.
        if self._discovery_failed is not None and time.monotonic() - self._discovery_failed[0] < DISCOVERY_RETRY_S:
            raise self._discovery_failed[1]
        try:
            found = await self._get_json(f"{self.issuer}/.well-known/openid-configuration", "discovery")
        except SignInFailed as exc:
            self._discovery_failed = (time.monotonic(), exc)
            raise
        self._discovery_failed = None
        # The issuer a provider names must be the one configured (discovery, section 4.3).
        if not isinstance(found.get("issuer"), str) or found["issuer"].rstrip("/") != self.issuer:
            raise SignInFailed(Failure.GARBAGE, f"discovery names another issuer: {found.get('issuer')!r}")
        for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(found.get(endpoint), str) or not found[endpoint].startswith(("https://", "http://")):
                raise SignInFailed(Failure.GARBAGE, f"discovery has no {endpoint}")
        self._metadata, self._metadata_read_at, self._keys = found, time.monotonic(), None
        return found

    async def _key_set(self, *, again: bool = False) -> KeySet:
        if self._keys is None or again:
            metadata = await self.metadata()
            published = await self._get_json(metadata["jwks_uri"], "keys")
            try:
                self._keys = KeySet.import_key_set(published)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise SignInFailed(Failure.GARBAGE, f"keys: {type(exc).__name__}") from None
        return self._keys

    async def begin(self, redirect_uri: str, next_page: str, timezone: str) -> tuple[str, PendingSignIn]:
        """Where to send the browser, and what to keep until it comes back."""
        metadata = await self.metadata()
        pending = PendingSignIn(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(64),
            next_page=next_page,
            timezone=timezone,
            started_at=time.time(),
        )
        # Built without an HTTP client: making one loads the CA bundle (about 40 ms of CPU), which
        # an anonymous visitor could otherwise make the service spend on every click.
        url = prepare_grant_uri(
            metadata["authorization_endpoint"],
            self.client_id,
            "code",
            redirect_uri=redirect_uri,
            scope=SCOPE,
            state=pending.state,
            code_challenge=create_s256_code_challenge(pending.code_verifier),
            code_challenge_method="S256",
            nonce=pending.nonce,
        )
        return str(url), pending

    async def finish(self, pending: PendingSignIn, code: str, redirect_uri: str) -> VouchedIdentity:
        """Trade the code for tokens (with the PKCE verifier) and verify the ID token."""
        metadata = await self.metadata()
        try:
            async with self._client(redirect_uri=redirect_uri) as client:
                tokens = await client.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=pending.code_verifier,
                    redirect_uri=redirect_uri,
                )
        except OAuthError as exc:
            # invalid_grant: the code expired or was used; anything else is the provider refusing us.
            failure = Failure.CODE if exc.error == "invalid_grant" else Failure.GARBAGE
            raise SignInFailed(failure, f"token endpoint: {exc.error}") from None
        except httpx2.HTTPStatusError as exc:
            status = exc.response.status_code
            failure = Failure.UNAVAILABLE if status >= 500 else Failure.GARBAGE
            raise SignInFailed(failure, f"token endpoint: HTTP {status}") from None
        except httpx2.HTTPError as exc:
            raise SignInFailed(Failure.UNAVAILABLE, f"token endpoint: {type(exc).__name__}") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise SignInFailed(Failure.GARBAGE, f"token endpoint: {type(exc).__name__}") from None
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed(Failure.GARBAGE, "token endpoint: no id_token")
        claims = await self._verified_claims(metadata, id_token, pending.nonce, tokens.get("access_token"))
        email, verified = claims.get("email"), _verified_flag(claims.get("email_verified"))
        if not isinstance(email, str):
            email, verified = await self._email_from_user_info(metadata, claims["sub"], tokens.get("access_token"))
        return VouchedIdentity(subject=str(claims["sub"]), email=email, email_verified=verified, id_token=id_token)

    async def _verified_claims(
        self, metadata: dict[str, Any], id_token: str, nonce: str, access_token: Any
    ) -> dict[str, Any]:
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in SIGNING_ALGORITHMS if alg in offered]
        registry = JWSRegistry(algorithms=algorithms or ["RS256"], strict_check_header=False)
        try:
            try:
                token = jwt.decode(id_token, await self._key_set(), registry=registry)
            except InvalidKeyIdError:
                # A key the provider has just rotated in, or one it never published.
                token = jwt.decode(id_token, await self._key_set(again=True), registry=registry)
            claims = CodeIDToken(
                token.claims,
                token.header,
                {
                    "iss": {"essential": True, "value": metadata["issuer"]},
                    "aud": {"essential": True, "value": self.client_id},
                },
                {"nonce": nonce, "client_id": self.client_id, "access_token": access_token},
            )
            claims.validate(now=int(time.time()), leeway=CLOCK_SKEW_S)
        except JoseError as exc:
            raise SignInFailed(Failure.UNTRUSTED, f"ID token: {type(exc).__name__} {exc}") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise SignInFailed(Failure.UNTRUSTED, f"ID token: {type(exc).__name__}") from None
        return dict(claims)

    async def _email_from_user_info(
        self, metadata: dict[str, Any], subject: Any, access_token: Any
    ) -> tuple[str | None, bool]:
        """Providers that leave the email out of the ID token give it at the user info endpoint."""
        endpoint = metadata.get("userinfo_endpoint")
        if not isinstance(endpoint, str) or not isinstance(access_token, str):
            return None, False
        try:
            async with self._client(token={"access_token": access_token, "token_type": "Bearer"}) as client:
                response = await client.get(endpoint)
            info = response.json()
        except (httpx2.HTTPError, ValueError) as exc:
            raise SignInFailed(Failure.UNAVAILABLE, f"user info: {type(exc).__name__}") from None
        # Only what the provider says of the subject of the verified token counts (OIDC core 5.3.2).
        if not isinstance(info, dict) or info.get("sub") != subject or not isinstance(info.get("email"), str):
            return None, False
        return info["email"], _verified_flag(info.get("email_verified"))

    async def end_session_url(self, id_token: str | None, after_sign_out: str) -> str | None:
        """Where to send the browser to end its session at the provider too, when it offers that."""
        try:
            metadata = await self.metadata()
        except SignInFailed as exc:
            logger.warning("identity provider unreachable at sign-out", reason=exc.detail)
            return None
        endpoint = metadata.get("end_session_endpoint")
        if not isinstance(endpoint, str):
            return None
        params = {"client_id": self.client_id, "post_logout_redirect_uri": after_sign_out}
        if id_token:
            params["id_token_hint"] = id_token
        return str(httpx2.URL(endpoint).copy_merge_params(params))


__all__ = ("Failure", "OpenIDProvider", "PendingSignIn", "SignInFailed", "VouchedIdentity")
