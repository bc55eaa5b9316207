"""A real SMTP server (aiosmtpd) for development and tests, and the mailbox ``notification dev``
keeps: every message it receives is written as an ``.eml`` file under ``<data dir>/mail/``, where
the console reads them (:mod:`notification.reports.mailbox`).

The server runs on a thread of its own with its own event loop, so it serves the same way beside
a blocking program (``dev`` runs uvicorn in the foreground) and beside an async test."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import shlex
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from notification.config import PREFIX, Settings
from notification.logging import mask_text
from notification.reports.mailbox import dev_mail_dir


class SmtpServer:
    """aiosmtpd on ``host:port`` (0 picks a free port, known once started). ``smtp_options`` go to
    aiosmtpd's ``SMTP`` (``tls_context``, ``require_starttls``, ``authenticator``, ``auth_required``...);
    ``implicit_tls`` wraps the socket in TLS from the first byte, like a port 465 server."""

    def __init__(
        self,
        handler: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        implicit_tls: ssl.SSLContext | None = None,
        **smtp_options: Any,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.implicit_tls = implicit_tls
        self.smtp_options = smtp_options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port}"

    def start(self) -> SmtpServer:
        # Bound here, before the thread runs: the port is known and connections queue from now on.
        sock = socket.create_server((self.host, self.port))
        self.port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            factory = lambda: SMTP(self.handler, loop=loop, **self.smtp_options)  # noqa: E731
            self._server = loop.run_until_complete(loop.create_server(factory, sock=sock, ssl=self.implicit_tls))
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name=f"smtp-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=10):
            msg = "the SMTP server did not start"
            raise RuntimeError(msg)
        return self

    def stop(self) -> None:
        """Stops listening (the port is refused until :meth:`start` again)."""
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop = self._thread = self._server = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Mailbox:
    """An aiosmtpd handler that keeps each message it accepts as ``<received at>-<n>.eml``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._sequence = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802  (aiosmtpd's hook name)
        content = envelope.original_content or b""
        received = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{received}-{next(self._sequence)}.eml"
        await asyncio.to_thread(path.write_bytes, content)
        return "250 Message accepted for delivery"


DEV_RECIPIENTS = "operators@localhost"


def start_dev_mail(settings: Settings, port: int) -> SmtpServer | None:
    """Unless an SMTP server is configured: a local one keeping what it receives, made the SMTP
    server (and default recipients) of the processes started after it (``dev``'s worker)."""
    if settings.smtp_url:
        return None
    server = SmtpServer(Mailbox(dev_mail_dir(settings)), port=port).start()
    # There from the start: the console shows the reports received here, none at first.
    dev_mail_dir(settings).mkdir(parents=True, exist_ok=True)
    os.environ[f"{PREFIX}SMTP_URL"] = server.url
    os.environ.setdefault(f"{PREFIX}REPORT_RECIPIENTS", DEV_RECIPIENTS)
    return server


def dev_mail_banner(settings: Settings, server: SmtpServer) -> list[str]:
    """What ``notification dev`` prints about its mail: where it lands and how to get a report now."""
    database = shlex.quote(mask_text(settings.database_url or ""))
    send_now = f"{PREFIX}DATABASE_URL={database} {PREFIX}SMTP_URL={server.url} uv run notification report send"
    recipients = ", ".join(settings.report_recipients) or "nobody"
    return [
        f"  mail        {server.url}, each message kept as an .eml file in {dev_mail_dir(settings).resolve()}",
        f"  report      daily at {settings.report_cron!r} ({settings.report_timezone}) to {recipients}; one now:",
        f"              {send_now}",
    ]
