"""Settings read once from ``NOTIFICATION_*`` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, get_args, get_type_hints

PREFIX = "NOTIFICATION_"


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
    log_level: str = "INFO"
    log_json: bool = True
    data_dir: Path = Path(".notification")

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
