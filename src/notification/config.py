"""Settings read once from ``NOTIFICATION_*`` environment variables."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, get_args, get_type_hints
from urllib.parse import urlsplit

from croniter import croniter

from notification.timezones import is_known_timezone

PREFIX = "NOTIFICATION_"
MIN_TOKEN_LENGTH = 32


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the service; each field maps to ``NOTIFICATION_<FIELD_NAME_UPPER>``."""

    database_url: str | None = None
    database_pool_size: int = 10
    provider_url: str = "http://127.0.0.1:9090/v1"
    provider_token: str = field(default="", repr=False)
    provider_timeout_s: float = 10.0
    provider_concurrency: int = 200
    provider_rate_limit: float | None = None
    """SMS parts per second for every worker together; None: no limit (and no database round trip)."""
    provider_callback_secret: str = field(default="", repr=False)
    """What the settings' provider signs its receipt callbacks with (Standard Webhooks); empty: its
    callbacks are refused."""
    receipt_timeout_s: float = 48 * 3600.0
    """A sent message with no receipt this long after its send is marked ``unknown``."""
    secret_key: tuple[str, ...] = field(default=(), repr=False)
    """Fernet keys (comma separated, newest first) that encrypt the providers' stored secrets; the
    first encrypts, every one decrypts, so a key is rotated by putting the new one first. None: no
    provider secret can be stored."""
    send_batch_size: int = 500
    send_lease_s: float = 10.0
    result_flush_size: int = 100
    retry_base_s: float = 1.0
    retry_max_s: float = 300.0
    worker_concurrency: int = 4
    worker_heartbeat_s: float = 2.0
    worker_poll_s: float = 1.0
    worker_metrics_port: int = 9100
    stalled_job_after_s: float = 6.0
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    """Bearer tokens the API accepts (``NOTIFICATION_API_TOKENS``, comma separated); none = every call refused."""
    console_secret: str = field(default="", repr=False)
    """Signs the console's CSRF tokens; unset = a random one per process (set it when running several)."""
    session_ttl_s: float = 8 * 3600.0
    """A console session ends after this long without a request."""
    session_max_age_s: float = 12 * 3600.0
    """A console session ends this long after its sign-in, however active it is."""
    sign_in_failures_allowed: int = 10
    """Wrong tokens and refused sign-ins one client address may make per window before it must wait."""
    sign_in_failure_window_s: float = 900.0
    trusted_proxies: tuple[str, ...] = ("127.0.0.1",)
    """Addresses or networks whose X-Forwarded-Proto and X-Forwarded-For are believed (the ingress)."""
    secure_cookies: bool = False
    """Console cookies always Secure and HSTS on every answer: set when the service is reached over HTTPS only."""
    public_url: str = ""
    """The address browsers reach the service at (https://notification.example.com); sign-in redirects use it."""
    allow_plain_http: bool = False
    """Accept http:// provider and OpenID issuer URLs on hosts other than loopback (a staging cluster's fake)."""
    oidc_issuer: str = ""
    """The OpenID provider console users sign in with, found by discovery; empty = no single sign-on."""
    oidc_client_id: str = ""
    oidc_client_secret: str = field(default="", repr=False)
    admin_emails: tuple[str, ...] = ()
    """Who signs in as an admin: addresses, or ``@domain`` for every address of a domain."""
    viewer_emails: tuple[str, ...] = ()
    """Who signs in as a viewer (sees everything, changes nothing); same form as ``admin_emails``."""
    console_token_signin: bool | None = None
    """Whether an API token signs in to the console; unset = only when no OpenID provider is set."""
    message_retention_days: int | None = None
    """Messages of mailings that ended longer ago than this are deleted, their counters kept; None: kept forever."""
    log_level: str = "INFO"
    log_json: bool = True
    data_dir: Path = Path(".notification")
    report_timezone: str = "UTC"
    """The time zone whose calendar days the daily report covers and whose clock the cron reads."""
    report_cron: str = "30 5 * * *"
    report_recipients: tuple[str, ...] = ()
    report_from: str = "notification@localhost"
    smtp_url: str = field(default="", repr=False)
    """``smtp://user:password@host:587`` (STARTTLS when offered), ``smtps://...:465``; empty = no mail."""
    smtp_allow_plaintext_auth: bool = False
    """Send the SMTP password to a server that does not offer STARTTLS; never in production."""
    smtp_timeout_s: float = 30.0
    """How long one step of the SMTP exchange may wait for the server; a worker sending the day's
    report holds it for four times this before another may presume it dead and try."""
    report_retry_base_s: float = 60.0
    report_retry_max_s: float = 1800.0
    stop_words: tuple[str, ...] = (
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "СТОП",
        "ОТПИСАТЬСЯ",
        "ОТПИСКА",
    )
    """Texts of an inbound message (the whole of it, trimmed, any case) that put its sender on the
    suppression list (comma separated)."""
    stop_reply: str = ""
    """The text sent back, through the provider it came from, to a stop word; empty = no reply."""
    suppress_invalid_numbers: bool = False
    """A provider's permanent answer that the number does not exist puts it on the suppression list."""
    schedule_lead_s: float = 600.0
    """How long before its start an occurrence of a schedule becomes a mailing (a worker looks every minute)."""
    webhook_timeout_s: float = 10.0
    """One webhook request, connection to answer, at most."""
    webhook_concurrency: int = 8
    """Webhook requests in flight to one endpoint at once."""
    webhook_retry_base_s: float = 5.0
    """First delay after a failed webhook request; doubles with each failure, with jitter."""
    webhook_retry_max_s: float = 600.0
    webhook_disable_after_s: float = 86400.0
    """An endpoint whose every request has failed for this long is disabled (with an audit row)."""
    webhook_retention_s: float = 7 * 86400.0
    """Webhook events older than this are deleted, delivered or not."""

    def __post_init__(self) -> None:
        # The living worker renews its leases every quarter of their length, twice a second at
        # the most: a shorter lease could run out between two renewals.
        if self.send_lease_s < 2:
            msg = f"{PREFIX}SEND_LEASE_S must be at least 2 (seconds)"
            raise ValueError(msg)
        if self.provider_rate_limit is not None and self.provider_rate_limit <= 0:
            msg = f"{PREFIX}PROVIDER_RATE_LIMIT must be a positive number of SMS parts per second (unset: no limit)"
            raise ValueError(msg)
        # A worker that missed one heartbeat is slow, not dead.
        if self.stalled_job_after_s <= 2 * self.worker_heartbeat_s:
            msg = f"{PREFIX}STALLED_JOB_AFTER_S must exceed twice {PREFIX}WORKER_HEARTBEAT_S"
            raise ValueError(msg)
        if self.message_retention_days is not None and self.message_retention_days < 1:
            msg = f"{PREFIX}MESSAGE_RETENTION_DAYS must be at least 1 (unset keeps messages forever)"
            raise ValueError(msg)
        if self.provider_callback_secret and not self.provider_callback_secret.startswith("whsec_"):
            msg = f"{PREFIX}PROVIDER_CALLBACK_SECRET must be a Standard Webhooks secret: whsec_ and base64"
            raise ValueError(msg)
        if self.receipt_timeout_s <= 0:
            msg = f"{PREFIX}RECEIPT_TIMEOUT_S must be a positive number of seconds"
            raise ValueError(msg)
        # Occurrences are looked for once a minute: a shorter lead would create some after their start.
        if self.schedule_lead_s < 60:
            msg = f"{PREFIX}SCHEDULE_LEAD_S must be at least 60 (seconds)"
            raise ValueError(msg)
        self._check_webhook_settings()
        self._check_report_settings()
        self._check_sign_in_settings()
        self._check_secrets()
        self._check_transport()
        self._check_secret_key()

    def _check_secrets(self) -> None:
        # A short or templated token is guessed, not brute-forced: refuse to start with one.
        for token in self.api_tokens:
            if len(token) < MIN_TOKEN_LENGTH or "CHANGE_ME" in token:
                msg = (
                    f"{PREFIX}API_TOKENS: every token must be at least {MIN_TOKEN_LENGTH} random characters"
                    " (e.g. `openssl rand -hex 32`); a shorter or placeholder one is refused"
                )
                raise ValueError(msg)
        if self.console_secret and (len(self.console_secret) < MIN_TOKEN_LENGTH or "CHANGE_ME" in self.console_secret):
            msg = f"{PREFIX}CONSOLE_SECRET must be at least {MIN_TOKEN_LENGTH} random characters"
            raise ValueError(msg)
        if self.session_max_age_s <= 0 or self.sign_in_failures_allowed < 1 or self.sign_in_failure_window_s <= 0:
            msg = (
                f"{PREFIX}SESSION_MAX_AGE_S and {PREFIX}SIGN_IN_FAILURE_WINDOW_S must be positive,"
                f" {PREFIX}SIGN_IN_FAILURES_ALLOWED at least 1"
            )
            raise ValueError(msg)

    def _check_transport(self) -> None:
        # The provider gets phones and texts, the issuer vouches for who signs in: neither over
        # plain HTTP across a network, unless said so out loud.
        named = [
            ("PROVIDER_URL", self.provider_url),
            ("OIDC_ISSUER", self.oidc_issuer),
            ("PUBLIC_URL", self.public_url),
        ]
        for name, url in named:
            if not url:
                continue
            parts = urlsplit(url)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                msg = f"{PREFIX}{name} must be an http(s) URL, got {url!r}"
                raise ValueError(msg)
            if parts.scheme == "http" and name != "PUBLIC_URL" and not self.allow_plain_http and not _loopback(url):
                msg = (
                    f"{PREFIX}{name} must use https:// outside this host (got {url!r});"
                    f" {PREFIX}ALLOW_PLAIN_HTTP=true accepts http:// (staging only)"
                )
                raise ValueError(msg)

    def _check_secret_key(self) -> None:
        from cryptography.fernet import Fernet

        for position, key in enumerate(self.secret_key, start=1):
            try:
                Fernet(key)
            except ValueError:
                # The key itself never goes into the error.
                msg = f"{PREFIX}SECRET_KEY: key {position} is not a Fernet key (32 url-safe base64-encoded bytes)"
                raise ValueError(msg) from None

    def _check_webhook_settings(self) -> None:
        positive = {
            "WEBHOOK_TIMEOUT_S": self.webhook_timeout_s,
            "WEBHOOK_CONCURRENCY": self.webhook_concurrency,
            "WEBHOOK_RETRY_BASE_S": self.webhook_retry_base_s,
            "WEBHOOK_RETRY_MAX_S": self.webhook_retry_max_s,
            "WEBHOOK_DISABLE_AFTER_S": self.webhook_disable_after_s,
            "WEBHOOK_RETENTION_S": self.webhook_retention_s,
        }
        for name, value in positive.items():
            if value <= 0:
                msg = f"{PREFIX}{name} must be positive"
                raise ValueError(msg)

    def _check_report_settings(self) -> None:
        if not is_known_timezone(self.report_timezone):
            msg = f"{PREFIX}REPORT_TIMEZONE must be an IANA time zone such as Europe/Moscow"
            raise ValueError(f"{msg}, got {self.report_timezone!r}")
        if len(self.report_cron.split()) != 5 or not croniter.is_valid(self.report_cron):
            msg = f"{PREFIX}REPORT_CRON must be a five-field cron expression such as '30 5 * * *'"
            raise ValueError(f"{msg}, got {self.report_cron!r}")
        if self.smtp_timeout_s <= 0:
            msg = f"{PREFIX}SMTP_TIMEOUT_S must be a positive number of seconds"
            raise ValueError(msg)
        # The URL carries the password: its text never goes into the error.
        if self.smtp_url and (urlsplit(self.smtp_url).scheme not in {"smtp", "smtps"} or not _smtp_host(self.smtp_url)):
            msg = f"{PREFIX}SMTP_URL must look like smtp://user:password@host:587 or smtps://host:465"
            raise ValueError(msg)

    def _check_sign_in_settings(self) -> None:
        if self.oidc_issuer and urlsplit(self.oidc_issuer).scheme not in {"http", "https"}:
            msg = f"{PREFIX}OIDC_ISSUER must be the provider's URL, such as https://accounts.example.com"
            raise ValueError(msg)
        if self.oidc_issuer and not self.oidc_client_id:
            msg = f"{PREFIX}OIDC_CLIENT_ID must be set with {PREFIX}OIDC_ISSUER"
            raise ValueError(msg)
        for name in ("admin_emails", "viewer_emails"):
            for entry in getattr(self, name):
                _, at, domain = entry.rpartition("@")
                if not at or not domain or ("." not in domain and domain != "localhost"):
                    msg = f"{PREFIX}{name.upper()} takes addresses or @domain entries, got {entry!r}"
                    raise ValueError(msg)

    @property
    def token_sign_in(self) -> bool:
        """Whether the console takes an API token to sign in: as set, else only without single sign-on."""
        return self.console_token_signin if self.console_token_signin is not None else not self.oidc_issuer

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the asyncpg driver the API uses."""
        return _with_driver(self._require_database_url(), "postgresql+asyncpg")

    @property
    def psycopg_conninfo(self) -> str:
        """The database URL in the plain form psycopg (and so procrastinate) accepts."""
        return _with_driver(self._require_database_url(), "postgresql")

    def _require_database_url(self) -> str:
        if not self.database_url:
            msg = f"{PREFIX}DATABASE_URL is not set"
            raise RuntimeError(msg)
        return self.database_url


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _smtp_host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _with_driver(url: str, scheme: str) -> str:
    _, sep, rest = url.partition("://")
    if not sep:
        msg = f"{PREFIX}DATABASE_URL must look like postgresql://user@host:port/dbname"
        raise ValueError(msg)
    return f"{scheme}://{rest}"


def _parse(raw: str, kind: Any, name: str) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        msg = f"{name} must be true or false, got {raw!r}"
        raise ValueError(msg)
    if kind is int or kind is float:
        try:
            return kind(raw)
        except ValueError:
            msg = f"{name} must be a number, got {raw!r}"
            raise ValueError(msg) from None
    if kind is Path:
        return Path(raw)
    if kind == tuple[str, ...]:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from an environment mapping (``os.environ`` by default)."""
    env = os.environ if environ is None else environ
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        name = PREFIX + f.name.upper()
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        kind = hints[f.name]
        if isinstance(kind, UnionType):  # `X | None`: set means X
            kind = next(arg for arg in get_args(kind) if arg is not NoneType)
        values[f.name] = _parse(raw, kind, name)
    return Settings(**values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, parsed on first use."""
    return load_settings()
