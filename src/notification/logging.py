"""structlog configuration shared by the API, the worker and the CLI: JSON lines with context ids.

Ids (``request_id``, ``mailing_id``, ``message_id``, ``client_id``) ride in structlog's contextvars
or are passed to each call; :func:`mask_secrets` runs last before rendering, so that no phone number
beyond its last four digits and no token ever reaches a log line, whoever logged it.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from notification.config import Settings

MASK = "***"

# Any key that names a credential: its value is never logged.
_SECRET_KEY = re.compile(r"token|authori[sz]ation|password|passwd|secret|api[_-]?key|cookie", re.IGNORECASE)
# A phone of the directory: "7" then 10 digits, not part of a longer number.
_PHONE = re.compile(r"(?<!\d)7\d{6}(\d{4})(?!\d)")
_PHONE_INT_MIN, _PHONE_INT_MAX = 70_000_000_000, 79_999_999_999
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@/\s]+@")


def mask_text(text: str) -> str:
    """Phones down to their last 4 digits, bearer tokens and URL passwords hidden."""
    if "7" in text:
        text = _PHONE.sub(r"*******\1", text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(rf"\1 {MASK}", text)
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\1{MASK}@", text)
    return text


def _mask_value(value: Any, depth: int = 0) -> Any:  # noqa: PLR0911  (one answer per kind of value)
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return mask_text(str(value)) if _PHONE_INT_MIN <= value <= _PHONE_INT_MAX else value
    if depth > 5:
        return value
    if isinstance(value, Mapping):
        return {k: MASK if _secret_key(k) else _mask_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask_value(v, depth + 1) for v in value]
    return value


def mask_value(value: Any) -> Any:
    """A value as a log line carries it: phones down to their last 4 digits, credentials hidden
    (the audit log stores changed fields this way too)."""
    return _mask_value(value)


@functools.lru_cache(maxsize=1024)
def _secret_name(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def _secret_key(key: Any) -> bool:
    return isinstance(key, str) and _secret_name(key)


# Keys whose values this configuration writes itself: nothing to mask, skipped on the hot path.
_OWN_KEYS = frozenset({"timestamp", "level", "logger", "request_id"})


def mask_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask phone-like values and the values of credential-like keys."""
    for key, value in event_dict.items():
        if key in _OWN_KEYS:
            continue
        if _secret_key(key):
            event_dict[key] = MASK
        elif value is not None and not isinstance(value, float):
            event_dict[key] = _mask_value(value)
    return event_dict


class PeriodicChatter(logging.Filter):
    """procrastinate's INFO lines about periodic jobs (deferred, started, succeeded: a dozen a
    minute when idle) go down to DEBUG, so that requests, mailings and errors stay in view; their
    failures keep their level. A periodic job is the one whose arguments carry the ``timestamp``
    procrastinate gives every periodic task and no other task of ours takes."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not record.name.startswith("procrastinate"):
            return True
        job = getattr(record, "job", None)
        arguments = job.get("task_kwargs") if isinstance(job, Mapping) else None
        periodic = getattr(record, "action", None) == "periodic_task_deferred" or (
            isinstance(arguments, Mapping) and "timestamp" in arguments
        )
        if not periodic:
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return self.level <= logging.DEBUG


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        # Last before rendering: exception texts (e.g. a unique-key violation naming a phone) included.
        mask_secrets,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if settings.log_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # Not cached: a module's logger follows a later configure_logging (a new level, another stream).
        # Hot paths bind a logger once per batch, so the lookup is not paid per line.
        cache_logger_on_first_use=False,
    )
    # Library loggers (procrastinate, uvicorn, alembic) go through the same renderer.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(PeriodicChatter(level))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "uvicorn.access", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
