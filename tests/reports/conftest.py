"""A real SMTP server (aiosmtpd) in the test process that records what it receives and answers
as told, and a way to lay out a day of mailings and messages."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from psycopg_pool import AsyncConnectionPool

from notification.config import Settings
from notification.dev.mail_server import SmtpServer
from notification.mailings.sms import measure

RECIPIENT = "operators@example.org"
SENDER = "reports@example.org"


@dataclass(frozen=True)
class Received:
    message: EmailMessage
    recipients: list[str]
    tls: bool
    login: str | None

    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert isinstance(part, EmailMessage)
        content: str = part.get_content()
        return content

    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert isinstance(part, EmailMessage)
        content: str = part.get_content()
        return content


class RecordingHandler:
    """Keeps every accepted message; ``replies`` scripts the answers to the next DATA commands
    (a 4xx or 5xx refuses the message); ``delay_s`` makes a slow server; ``unknown_recipients`` are refused
    at RCPT TO."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.replies: deque[str] = deque()
        self.refusals: list[str] = []
        self.delay_s = 0.0
        # DATA commands whose content the server has read, answered or not yet.
        self.data_started = 0
        # Addresses answered 550 at RCPT TO: a mailbox the server does not know.
        self.unknown_recipients: set[str] = set()
        self._lock = threading.Lock()

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.unknown_recipients:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        with self._lock:
            self.data_started += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)  # the server is slow, the client waits for it
        with self._lock:
            reply = self.replies.popleft() if self.replies else "250 OK"
            if not reply.startswith("2"):
                self.refusals.append(reply)
                return reply
            message = email.message_from_bytes(
                envelope.original_content or b"", _class=EmailMessage, policy=email.policy.default
            )
            login = session.auth_data.login.decode() if session.auth_data is not None else None
            self.received.append(Received(message, list(envelope.rcpt_tos), session.ssl is not None, login))
        return reply

    def messages(self) -> list[Received]:
        with self._lock:
            return list(self.received)


@pytest.fixture
def mail() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
def smtp_server(mail: RecordingHandler) -> Iterator[SmtpServer]:
    with SmtpServer(mail) as server:
        yield server


@pytest.fixture
def report_settings(settings: Settings, smtp_server: SmtpServer) -> Settings:
    return replace(
        settings,
        smtp_url=smtp_server.url,
        report_recipients=(RECIPIENT,),
        report_from=SENDER,
        report_timezone="America/New_York",
        report_retry_base_s=60.0,
        report_retry_max_s=600.0,
    )


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(
        settings.psycopg_conninfo, min_size=1, max_size=4, kwargs={"autocommit": True}, open=False
    ) as opened:
        yield opened


@pytest.fixture
async def conn(settings: Settings) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(settings.psycopg_conninfo, autocommit=True) as connection:
        yield connection


class Day:
    """Mailings and messages laid out directly in the tables, at local times of one time zone."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], timezone: str) -> None:
        self.conn = conn
        self.zone = ZoneInfo(timezone)
        self._phones = iter(range(79_000_000_000, 79_999_999_999))

    def at(self, day: dt.date, hhmm: str) -> dt.datetime:
        hours, minutes = (int(part) for part in hhmm.split(":"))
        return dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=self.zone)

    async def mailing(self, text: str, start_at: dt.datetime, end_at: dt.datetime) -> int:
        sms = measure(text)
        row = await (
            await self.conn.execute(
                "INSERT INTO mailings (text, encoding, parts, start_at, end_at, planned_version)"
                " VALUES (%s, %s, %s, %s, %s, 1) RETURNING id",
                (text, sms.encoding.value, sms.parts, start_at, end_at),
            )
        ).fetchone()
        assert row is not None
        return int(row[0])

    async def messages(
        self,
        mailing_id: int,
        status: str,
        count: int = 1,
        sent_at: dt.datetime | None = None,
        last_error: str | None = None,
        error_kind: str | None = None,
    ) -> None:
        for _ in range(count):
            phone = str(next(self._phones))
            client = await (
                await self.conn.execute(
                    "INSERT INTO clients (phone, operator_code, timezone) VALUES (%s, %s, 'UTC') RETURNING id",
                    (phone, phone[1:4]),
                )
            ).fetchone()
            assert client is not None
            await self.conn.execute(
                "INSERT INTO messages (mailing_id, client_id, status, sent_at, last_error, error_kind, attempts)"
                " VALUES (%s, %s, %s, %s, %s, %s, 1)",
                (mailing_id, client[0], status, sent_at, last_error, error_kind),
            )
