"""The ``notification`` command: Litestar's CLI with the service's own commands added."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import click
from click import Group
from litestar.plugins import CLIPluginProtocol

from notification.config import PREFIX, get_settings
from notification.stats.cli import stats


@click.command(name="serve", help="Serve the API against NOTIFICATION_DATABASE_URL (production).")
@click.option("--host", default="0.0.0.0", show_default=True)  # noqa: S104  (a server binds every interface)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="API processes")
def serve(host: str, port: int, workers: int) -> None:
    import uvicorn

    if not get_settings().database_url:
        raise click.UsageError(f"{PREFIX}DATABASE_URL is not set (use `notification dev` for a local database)")
    uvicorn.run(
        "notification.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )


@click.command(name="dev", help="Run everything a newcomer needs: database, migrations, API, worker, fake provider.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--provider-port", default=9090, show_default=True, type=int, help="Port of the fake provider")
def dev(host: str, port: int, provider_port: int) -> None:
    """One process tree: an embedded PostgreSQL unless NOTIFICATION_DATABASE_URL is set, the fake
    provider unless NOTIFICATION_PROVIDER_URL is set, a worker, and the API in this process."""
    import uvicorn

    from notification.embedded_db import start_embedded_postgres
    from notification.migrate import upgrade_database

    settings = get_settings()
    database = None
    if not settings.database_url:
        click.echo(f"starting PostgreSQL in {Path(settings.data_dir).resolve()} ...", err=True)
        database = start_embedded_postgres(Path(settings.data_dir))
        os.environ[f"{PREFIX}DATABASE_URL"] = database.get_uri()
    run_fake_provider = f"{PREFIX}PROVIDER_URL" not in os.environ
    if run_fake_provider:
        os.environ[f"{PREFIX}PROVIDER_URL"] = f"http://127.0.0.1:{provider_port}/v1"
    os.environ.setdefault(f"{PREFIX}LOG_JSON", "false")
    generated_token = None
    if not os.environ.get(f"{PREFIX}API_TOKENS"):
        # The API refuses every call without a token: a newcomer gets one made up for this run.
        generated_token = secrets.token_urlsafe(24)
        os.environ[f"{PREFIX}API_TOKENS"] = generated_token
    get_settings.cache_clear()
    settings = get_settings()
    click.echo("applying migrations ...", err=True)
    upgrade_database(settings)

    children: list[subprocess.Popen[bytes]] = []
    if run_fake_provider:
        fake = [
            sys.executable,
            "-m",
            "notification",
            "fake-provider",
            "--port",
            str(provider_port),
            "--latency-ms",
            "50",
        ]
        children.append(subprocess.Popen(fake))  # noqa: S603  (our own entry point)
    worker = [sys.executable, "-m", "procrastinate", "--app=notification.worker.app", "worker"]
    children.append(subprocess.Popen(worker))  # noqa: S603  (our own entry point)

    base = f"http://{host}:{port}"
    where_data_lives = f"embedded, data in {Path(settings.data_dir).resolve()}" if database else f"{PREFIX}DATABASE_URL"
    provider = f"{settings.provider_url} ({'fake' if run_fake_provider else 'from ' + PREFIX + 'PROVIDER_URL'})"
    click.echo(
        "\n".join(
            [
                "",
                f"  API         {base}/api/v1",
                f"  Swagger UI  {base}/docs",
                f"  provider    {provider}",
                f"  database    {where_data_lives}",
                f"  API token   {generated_token} (generated; send it as `Authorization: Bearer <token>`)"
                if generated_token
                else f"  API token   from {PREFIX}API_TOKENS",
                f"  metrics     {base}/metrics",
                "",
            ]
        ),
        err=True,
    )
    try:
        uvicorn.run("notification.app:create_app", factory=True, host=host, port=port, log_config=None)
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        if database is not None:
            database.cleanup()


@click.command(name="fake-provider", help="Run the fake SMS provider (same HTTP contract as the real one).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9090, show_default=True, type=int)
@click.option("--token", default=None, help="Bearer token to require (default: accept any)")
@click.option("--latency-ms", default=0.0, show_default=True, type=float)
@click.option("--latency-jitter-ms", default=0.0, show_default=True, type=float)
@click.option("--error-rate", default=0.0, show_default=True, type=float, help="Fraction answered 500")
@click.option("--reject-rate", default=0.0, show_default=True, type=float, help="Fraction answered 400 (permanent)")
@click.option("--rate-limit-rate", default=0.0, show_default=True, type=float, help="Fraction answered 429")
@click.option(
    "--malformed-rate", default=0.0, show_default=True, type=float, help="Fraction answered 200 with a bad body"
)
@click.option("--hang-rate", default=0.0, show_default=True, type=float, help="Fraction that never answer in time")
@click.option("--down", is_flag=True, help="Answer every send with 503")
@click.option("--seed", default=None, type=int)
def fake_provider(
    host: str,
    port: int,
    token: str | None,
    latency_ms: float,
    latency_jitter_ms: float,
    error_rate: float,
    reject_rate: float,
    rate_limit_rate: float,
    malformed_rate: float,
    hang_rate: float,
    down: bool,
    seed: int | None,
) -> None:
    from notification.provider.fake import FakeProviderOptions, run_fake_provider

    options = FakeProviderOptions(
        token=token,
        latency_ms=latency_ms,
        latency_jitter_ms=latency_jitter_ms,
        error_rate=error_rate,
        reject_rate=reject_rate,
        rate_limit_rate=rate_limit_rate,
        malformed_rate=malformed_rate,
        hang_rate=hang_rate,
        down=down,
        seed=seed,
    )
    run_fake_provider(host, port, options)


class NotificationCLIPlugin(CLIPluginProtocol):
    def on_cli_init(self, cli: Group) -> None:
        for command in (serve, dev, fake_provider, stats):
            cli.add_command(command)


def main() -> None:
    os.environ.setdefault("LITESTAR_APP", "notification.app:create_app")
    from litestar.cli.main import litestar_group

    litestar_group()


__all__ = ("NotificationCLIPlugin", "main")
