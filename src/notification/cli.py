"""The ``notification`` command: Litestar's CLI with the service's own commands added."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click import Group
from litestar.plugins import CLIPluginProtocol

from notification.config import PREFIX, Settings, get_settings
from notification.reports.cli import report_group
from notification.stats.cli import stats

if TYPE_CHECKING:
    from notification.dev.embedded_db import EmbeddedPostgres
    from notification.dev.fake_smsc import RunningFakeSmsc
    from notification.dev.mail_server import SmtpServer
    from notification.dev.openid_provider import DevProvider


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
        # Only the ingress may say which scheme and client address a request came with.
        forwarded_allow_ips=",".join(get_settings().trusted_proxies),
    )


@click.command(name="dev", help="Run everything a newcomer needs: database, migrations, API, worker, fake provider.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--provider-port", default=9090, show_default=True, type=int, help="Port of the fake provider")
@click.option("--smsc-port", default=2775, show_default=True, type=int, help="Port of the fake SMSC")
@click.option("--smtp-port", default=8025, show_default=True, type=int, help="Port of the local mail server")
@click.option("--oidc-port", default=9400, show_default=True, type=int, help="Port of the local OpenID provider")
def dev(host: str, port: int, provider_port: int, smsc_port: int, smtp_port: int, oidc_port: int) -> None:
    """One process tree: an embedded PostgreSQL unless NOTIFICATION_DATABASE_URL is set, the fake
    provider and the fake SMSC unless NOTIFICATION_PROVIDER_URL is set (both stored as providers with
    an example route when none is stored), a mail server keeping what it receives unless
    NOTIFICATION_SMTP_URL is set, an OpenID provider to sign in to the console unless
    NOTIFICATION_OIDC_ISSUER is set, a worker, and the API in this process.

    Ctrl-C or SIGTERM stops all of it; if this process is killed outright, its children stop by
    themselves (Linux) and the next run stops whatever server the killed one left on its data."""
    from notification.dev.embedded_db import EmbeddedPostgresError

    # SIGTERM takes the way Ctrl-C takes, through the cleanup below: uvicorn re-raises the signal it
    # caught once it has shut down, and Python's default for SIGTERM would end the process on the spot.
    signal.signal(signal.SIGTERM, _interrupt)
    run = _DevRun()
    try:
        run.start(host, port, provider_port, smsc_port, smtp_port, oidc_port)
    except KeyboardInterrupt:
        pass
    except EmbeddedPostgresError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        run.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class _DevRun:
    """What `dev` started, so that it can stop all of it, in order: the API (uvicorn, in this
    process), the worker and the fake provider, then the database they use."""

    def __init__(self) -> None:
        self.database: EmbeddedPostgres | None = None
        self.mail_server: SmtpServer | None = None
        self.sign_in_provider: DevProvider | None = None
        self.smsc: RunningFakeSmsc | None = None
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self, host: str, port: int, provider_port: int, smsc_port: int, smtp_port: int, oidc_port: int) -> None:
        import uvicorn

        from notification.dev.mail_server import dev_mail_banner, start_dev_mail
        from notification.dev.openid_provider import dev_provider_banner, start_dev_provider
        from notification.migrate import upgrade_database

        settings = get_settings()
        if not settings.database_url:
            self.database = _start_database(Path(settings.data_dir))
            os.environ[f"{PREFIX}DATABASE_URL"] = self.database.get_uri()
        run_fake_provider = f"{PREFIX}PROVIDER_URL" not in os.environ
        if run_fake_provider:
            os.environ[f"{PREFIX}PROVIDER_URL"] = f"http://127.0.0.1:{provider_port}/v1"
        os.environ.setdefault(f"{PREFIX}LOG_JSON", "false")
        generated_token = None
        if not os.environ.get(f"{PREFIX}API_TOKENS"):
            # The API refuses every call without a token: a newcomer gets one made up for this run.
            generated_token = secrets.token_urlsafe(24)
            os.environ[f"{PREFIX}API_TOKENS"] = generated_token
        if not os.environ.get(f"{PREFIX}SECRET_KEY"):
            # The example providers' receipt callback secret is stored sealed, as any would be.
            os.environ[f"{PREFIX}SECRET_KEY"] = _dev_secret_key(Path(settings.data_dir))
        self.mail_server = start_dev_mail(settings, smtp_port)
        self.sign_in_provider = start_dev_provider(settings, oidc_port)
        get_settings.cache_clear()
        settings = get_settings()
        click.echo("applying migrations ...", err=True)
        alembic_log = logging.getLogger("alembic")
        level = alembic_log.level
        alembic_log.setLevel(logging.WARNING)  # a line per revision is noise on a newcomer's console
        try:
            upgrade_database(settings)
        finally:
            alembic_log.setLevel(level)
        click.echo("migrations applied", err=True)

        routing = self._start_fakes(settings, port, provider_port, smsc_port) if run_fake_provider else ""
        self._spawn([sys.executable, "-m", "procrastinate", "--app=notification.worker.app", "worker"])

        base = f"http://{host}:{port}"
        where_data_lives = (
            f"embedded, data in {self.database.pgdata}, log {self.database.log_path}"
            if self.database
            else f"{PREFIX}DATABASE_URL"
        )
        provider = f"{settings.provider_url} ({'fake' if run_fake_provider else 'from ' + PREFIX + 'PROVIDER_URL'})"
        click.echo(
            "\n".join(
                [
                    "",
                    f"  API         {base}/api/v1",
                    f"  Swagger UI  {base}/docs",
                    f"  console     {base}/admin"
                    + (" (single sign-on, see below)" if settings.oidc_issuer else " (sign in with the API token)"),
                    f"  provider    {provider}",
                    *([f"  SMSC        127.0.0.1:{smsc_port} (fake)", f"  routing     {routing}"] if routing else []),
                    f"  database    {where_data_lives}",
                    f"  API token   {generated_token} (generated; send it as `Authorization: Bearer <token>`)"
                    if generated_token
                    else f"  API token   from {PREFIX}API_TOKENS",
                    f"  metrics     {base}/metrics",
                    *(dev_mail_banner(settings, self.mail_server) if self.mail_server else []),
                    *(dev_provider_banner(self.sign_in_provider, f"{base}/admin") if self.sign_in_provider else []),
                    "",
                    "  Ctrl-C stops everything.",
                    "",
                ]
            ),
            err=True,
        )
        uvicorn.run("notification.app:create_app", factory=True, host=host, port=port, log_config=None)

    def _start_fakes(self, settings: Settings, port: int, provider_port: int, smsc_port: int) -> str:
        """The fake HTTP provider and the fake SMSC, and the example providers stored; says how routing goes."""
        from notification.dev.example_providers import store_example_providers
        from notification.dev.fake_smsc import FakeSmscOptions, serve_fake_smsc

        # Receipts flow as in production: the fake SMSC sends deliver_sm, the fake HTTP provider
        # posts signed callbacks to this API, a few undelivered, two seconds after each send.
        # Derived from the development database's key: the one stored on its first run stays right.
        seed = ",".join(settings.secret_key).encode()
        callback_secret = "whsec_" + base64.b64encode(hashlib.sha256(seed + b" fake-http receipts").digest()).decode()
        receipts_url = f"http://127.0.0.1:{port}/api/v1/providers/fake-http/receipts"
        fake = ["fake-provider", "--port", str(provider_port), "--latency-ms", "50", "--receipts-url", receipts_url]
        fake += ["--receipt-delay-ms", "2000", "--undelivered-rate", "0.05"]
        self._spawn(
            [sys.executable, "-m", "notification", *fake], env={"FAKE_PROVIDER_RECEIPTS_SECRET": callback_secret}
        )
        smsc_options = FakeSmscOptions(latency_ms=10, receipts=True, receipt_delay_ms=2000, undelivered_rate=0.05)
        self.smsc = serve_fake_smsc(smsc_options, port=smsc_port).start()
        if store_example_providers(
            settings.psycopg_conninfo, settings.provider_url, smsc_port, callback_secret, settings.secret_key
        ):
            routing = "stored: fake-smsc for operator codes 900-929 (then fake-http), fake-http for the rest"
        else:
            routing = "the stored providers and routes (/api/v1/providers, /api/v1/routes)"
        return routing

    def _spawn(self, command: list[str], env: dict[str, str] | None = None) -> None:
        from notification.dev.embedded_db import die_with_parent

        self.children.append(
            subprocess.Popen(  # noqa: S603  (our own entry points)
                command,
                env={**os.environ, **(env or {})},
                # Out of the terminal's process group: Ctrl-C reaches this process, which stops them
                # in order; if this process is killed outright, they get SIGTERM from the kernel.
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),  # noqa: PLW1509  (before exec, no threads touched)
            )
        )

    def stop(self) -> None:
        # A second Ctrl-C must not cut the cleanup short and leave a process behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=5)
        if self.mail_server is not None:
            self.mail_server.stop()
        if self.sign_in_provider is not None:
            self.sign_in_provider.stop()
        if self.smsc is not None:
            self.smsc.stop()
        if self.database is not None:
            self.database.stop()
        click.echo("stopped.", err=True)


def _start_database(data_dir: Path) -> EmbeddedPostgres:
    from notification.dev.embedded_db import EmbeddedPostgres

    database = EmbeddedPostgres(data_dir)
    click.echo(f"starting PostgreSQL in {database.pgdata} (its log: {database.log_path}) ...", err=True)
    started = time.monotonic()
    database.start()
    click.echo(f"PostgreSQL ready in {time.monotonic() - started:.1f} s", err=True)
    return database


def _dev_secret_key(data_dir: Path) -> str:
    """The development database's key, kept beside it: what it sealed stays readable next time."""
    from cryptography.fernet import Fernet

    path = data_dir / "secret-key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(Fernet.generate_key().decode())
    return path.read_text().strip()


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
@click.option("--receipts-url", default=None, help="Post a signed delivery receipt there for each accepted message")
@click.option(
    "--receipts-secret",
    default=None,
    envvar="FAKE_PROVIDER_RECEIPTS_SECRET",
    help="The whsec_ secret receipts are signed with (read from FAKE_PROVIDER_RECEIPTS_SECRET too)",
)
@click.option("--receipt-delay-ms", default=1000.0, show_default=True, type=float)
@click.option("--undelivered-rate", default=0.0, show_default=True, type=float, help="Fraction of receipts undelivered")
@click.option("--duplicate-rate", default=0.0, show_default=True, type=float, help="Fraction of receipts posted twice")
@click.option("--out-of-order", is_flag=True, help="Spread the receipts' delays so they overtake each other")
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
    receipts_url: str | None,
    receipts_secret: str | None,
    receipt_delay_ms: float,
    undelivered_rate: float,
    duplicate_rate: float,
    out_of_order: bool,
    seed: int | None,
) -> None:
    from notification.dev.fake_provider import FakeProviderOptions, run_fake_provider

    try:
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
            receipts_url=receipts_url,
            receipts_secret=receipts_secret,
            receipt_delay_ms=receipt_delay_ms,
            undelivered_rate=undelivered_rate,
            duplicate_rate=duplicate_rate,
            out_of_order=out_of_order,
            seed=seed,
        )
    except ValueError as exc:
        # A usage error, not a traceback: the knobs are the user's input.
        raise click.UsageError(str(exc)) from exc
    run_fake_provider(host, port, options)


class NotificationCLIPlugin(CLIPluginProtocol):
    def on_cli_init(self, cli: Group) -> None:
        for command in (serve, dev, fake_provider, report_group, stats):
            cli.add_command(command)


def main() -> None:
    os.environ.setdefault("LITESTAR_APP", "notification.app:create_app")
    from litestar.cli.main import litestar_group

    litestar_group()


__all__ = ("NotificationCLIPlugin", "main")
