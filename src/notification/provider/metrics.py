"""The worker's own metrics: what its provider requests took and how they ended, by provider.

The API's /metrics reads the database; request latencies exist only in the worker process, so
the worker serves them itself on NOTIFICATION_WORKER_METRICS_PORT (0 turns it off)."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Histogram, start_http_server

from notification.messages.models import ErrorKind
from notification.provider.base import Outcome, SendResult

PROVIDER_LATENCY = Histogram(
    "notification_provider_request_seconds",
    "Provider request latency, by provider (its name) and outcome (sent, transient, permanent)",
    ["provider", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PROVIDER_REQUESTS = Counter(
    "notification_provider_requests_total",
    "Provider requests made, by provider (its name), outcome and kind of answer (ok, http_5xx, http_429, timeout, ...)",
    ["provider", "outcome", "kind"],
)


def answer_kind(result: SendResult) -> str:
    """The kind of answer, with the same names as the API's notification_message_errors."""
    if result.error_kind is None:
        return "ok" if result.outcome is Outcome.SENT else ErrorKind.OTHER.value
    return result.error_kind.value


def observe(provider: str, result: SendResult) -> None:
    PROVIDER_LATENCY.labels(provider, result.outcome.value).observe(result.latency_s)
    PROVIDER_REQUESTS.labels(provider, result.outcome.value, answer_kind(result)).inc()


def serve_worker_metrics(port: int, host: str = "0.0.0.0") -> WSGIServer | None:  # noqa: S104  (scraped from outside)
    """Serves the metrics on a thread until the returned server is shut down (None: port 0, off)."""
    if not port:
        return None
    server, _thread = start_http_server(port, addr=host)
    return server
