"""Sending reports through a real SMTP server in the test process: TLS, AUTH, a server that is away,
refusals, the day's schedule and its single row, and the password kept out of everything."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from psycopg_pool import AsyncConnectionPool

from notification.config import Settings, load_settings
from notification.dev.mail_server import SmtpServer
from notification.logging import configure_logging
from notification.reports.sending import Outcome, due_report_day, send_due_report, send_report
from notification.reports.smtp import SmtpFailure
from tests.reports.conftest import RECIPIENT, RecordingHandler
from tests.servers import free_port

PASSWORD = "pa55-W0RD-never-shown"
USER = "reporter"
TZ = "America/New_York"
D = dt.date(2026, 3, 10)


def _local(day: dt.date, hhmm: str, timezone: str = TZ) -> dt.datetime:
    hours, minutes = (int(part) for part in hhmm.split(":"))
    return dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=ZoneInfo(timezone))


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trusted_ca(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test CA is what OpenSSL trusts in this process (SSL_CERT_FILE, as for a private CA)."""
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def _authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == USER.encode() and data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


@pytest.fixture
def log() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(replace(load_settings({}), log_level="INFO"), stream=stream)
    return stream


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


async def _delivery(conn: psycopg.AsyncConnection[Any], day: dt.date) -> dict[str, Any] | None:
    cursor = conn.cursor(row_factory=psycopg.rows.dict_row)
    await cursor.execute("SELECT * FROM report_deliveries WHERE report_day = %s", (day,))
    return await cursor.fetchone()


# --- TLS and AUTH -------------------------------------------------------------------------------


@pytest.mark.usefixtures("trusted_ca")
async def test_starttls_then_auth_delivers_the_report(
    ca: trustme.CA, mail: RecordingHandler, report_settings: Settings, conn: psycopg.AsyncConnection[Any]
) -> None:
    server = SmtpServer(
        mail,
        tls_context=_server_context(ca),
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
    )
    with server:
        settings = replace(report_settings, smtp_url=f"smtp://{USER}:{PASSWORD}@127.0.0.1:{server.port}")
        await send_report(conn, settings, D, [RECIPIENT], dt.datetime.now(dt.UTC))

    [received] = mail.messages()
    assert received.tls is True
    assert received.login == USER
    assert PASSWORD not in received.message.as_string()
    assert received.message["Subject"].startswith("Delivery report 2026-03-10:")


@pytest.mark.usefixtures("trusted_ca")
async def test_implicit_tls_with_smtps(
    ca: trustme.CA, mail: RecordingHandler, report_settings: Settings, conn: psycopg.AsyncConnection[Any]
) -> None:
    with SmtpServer(mail, implicit_tls=_server_context(ca)) as server:
        settings = replace(report_settings, smtp_url=f"smtps://127.0.0.1:{server.port}")
        await send_report(conn, settings, D, [RECIPIENT], dt.datetime.now(dt.UTC))

    [received] = mail.messages()
    assert received.login is None
    assert received.recipients == [RECIPIENT]


async def test_an_untrusted_certificate_is_refused_for_good(
    ca: trustme.CA, mail: RecordingHandler, report_settings: Settings, conn: psycopg.AsyncConnection[Any]
) -> None:
    with SmtpServer(mail, tls_context=_server_context(ca), require_starttls=True) as server:
        settings = replace(report_settings, smtp_url=f"smtp://127.0.0.1:{server.port}")
        with pytest.raises(SmtpFailure) as refused:
            await send_report(conn, settings, D, [RECIPIENT], dt.datetime.now(dt.UTC))

    assert refused.value.temporary is False
    assert "certificate" in refused.value.description
    assert mail.messages() == []


@pytest.mark.usefixtures("trusted_ca")
async def test_a_wrong_password_is_refused_for_good_and_never_shown(
    ca: trustme.CA,
    mail: RecordingHandler,
    report_settings: Settings,
    pool: AsyncConnectionPool,
    conn: psycopg.AsyncConnection[Any],
    log: io.StringIO,
) -> None:
    wrong = "wr0ng-" + PASSWORD
    server = SmtpServer(
        mail, tls_context=_server_context(ca), require_starttls=True, authenticator=_authenticator, auth_required=True
    )
    with server:
        settings = replace(
            report_settings,
            smtp_url=f"smtp://{USER}:{wrong}@127.0.0.1:{server.port}",
            report_cron="0 0 * * *",
        )
        now = _local(D, "09:00")
        assert await send_due_report(pool, settings, now) is Outcome.FAILED
        # A settled refusal is not tried again on the next ticks.
        assert await send_due_report(pool, settings, now + dt.timedelta(hours=1)) is Outcome.BUSY

    row = await _delivery(conn, D - dt.timedelta(days=1))
    assert row is not None
    assert row["status"] == "failed"
    assert row["attempts"] == 1
    assert row["last_error"].startswith(f"smtp://127.0.0.1:{server.port} replied 535")
    [line] = [line for line in _lines(log) if line["event"] == "daily report refused, not retried"]
    assert line["reply"] == row["last_error"]
    assert line["level"] == "error"
    assert mail.messages() == []
    for where in (log.getvalue(), row["last_error"], repr(settings), str(settings)):
        assert wrong not in where
        assert PASSWORD not in where


async def test_a_server_without_starttls_never_sees_the_password(
    mail: RecordingHandler, report_settings: Settings, conn: psycopg.AsyncConnection[Any]
) -> None:
    attempts: list[Any] = []

    def recording(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        attempts.append((mechanism, data))
        return AuthResult(success=True, handled=False, auth_data=data)

    # No TLS at all, AUTH PLAIN offered in the clear: what a server on the path would present.
    server = SmtpServer(mail, authenticator=recording, auth_require_tls=False)
    with server:
        settings = replace(report_settings, smtp_url=f"smtp://{USER}:{PASSWORD}@127.0.0.1:{server.port}")
        with pytest.raises(SmtpFailure) as refused:
            await send_report(conn, settings, D, [RECIPIENT], dt.datetime.now(dt.UTC))
        assert refused.value.temporary is False
        assert "offers no STARTTLS" in refused.value.description
        assert attempts == []
        assert mail.messages() == []

        # Said out loud, the operator's choice is followed: the same server then gets it.
        allowed = replace(settings, smtp_allow_plaintext_auth=True)
        await send_report(conn, allowed, D, [RECIPIENT], dt.datetime.now(dt.UTC))
    assert [mechanism for mechanism, _ in attempts] == ["PLAIN"]


# --- the schedule -------------------------------------------------------------------------------


def test_the_report_is_due_from_the_cron_time_until_local_midnight() -> None:
    cron, tz = "30 5 * * *", "Europe/Berlin"
    assert due_report_day(cron, tz, _local(D, "05:29", tz)) is None
    assert due_report_day(cron, tz, _local(D, "05:30", tz) + dt.timedelta(seconds=1)) == D - dt.timedelta(days=1)
    assert due_report_day(cron, tz, _local(D, "23:59", tz)) == D - dt.timedelta(days=1)
    assert due_report_day(cron, tz, _local(D + dt.timedelta(days=1), "00:01", tz)) is None
    # 05:30 on the clock of Berlin, whether its offset is +1 (before 29 March) or +2 (after).
    spring_forward = dt.date(2026, 3, 29)
    assert due_report_day(cron, tz, dt.datetime(2026, 3, 29, 3, 29, tzinfo=dt.UTC)) is None
    assert due_report_day(cron, tz, dt.datetime(2026, 3, 29, 3, 31, tzinfo=dt.UTC)) == spring_forward - dt.timedelta(
        days=1
    )
    assert due_report_day(cron, tz, dt.datetime(2026, 3, 28, 4, 31, tzinfo=dt.UTC)) == dt.date(2026, 3, 27)
    assert due_report_day(cron, tz, dt.datetime(2026, 3, 28, 4, 29, tzinfo=dt.UTC)) is None


async def test_no_recipients_means_no_report(
    report_settings: Settings, pool: AsyncConnectionPool, conn: psycopg.AsyncConnection[Any]
) -> None:
    settings = replace(report_settings, report_recipients=(), report_cron="0 0 * * *")
    assert await send_due_report(pool, settings, _local(D, "09:00")) is Outcome.OFF
    assert await _delivery(conn, D - dt.timedelta(days=1)) is None


async def test_a_server_down_then_back_gets_the_report_on_a_later_attempt(
    mail: RecordingHandler, report_settings: Settings, pool: AsyncConnectionPool, conn: psycopg.AsyncConnection[Any]
) -> None:
    port = free_port()
    settings = replace(report_settings, smtp_url=f"smtp://127.0.0.1:{port}", report_cron="30 5 * * *")
    reported = D - dt.timedelta(days=1)
    first = _local(D, "05:31")

    assert await send_due_report(pool, settings, first) is Outcome.RETRYING
    row = await _delivery(conn, reported)
    assert row is not None
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["next_attempt_at"] == first + dt.timedelta(seconds=60)
    assert "unreachable" in row["last_error"]
    # Before its backoff has run out, nobody tries again.
    assert await send_due_report(pool, settings, first + dt.timedelta(seconds=30)) is Outcome.BUSY
    # Still down: the next delay doubles.
    assert await send_due_report(pool, settings, first + dt.timedelta(seconds=61)) is Outcome.RETRYING
    row = await _delivery(conn, reported)
    assert row is not None
    assert row["next_attempt_at"] == first + dt.timedelta(seconds=61 + 120)

    with SmtpServer(mail, port=port):
        assert await send_due_report(pool, settings, first + dt.timedelta(seconds=200)) is Outcome.SENT
        assert await send_due_report(pool, settings, first + dt.timedelta(seconds=300)) is Outcome.BUSY

    row = await _delivery(conn, reported)
    assert row is not None
    assert (row["status"], row["attempts"], row["recipients"], row["last_error"]) == ("sent", 3, [RECIPIENT], None)
    [received] = mail.messages()
    assert received.message["Message-ID"] == f"<daily-report.{reported.isoformat()}@example.org>"
    assert received.message["Subject"].startswith(f"Delivery report {reported.isoformat()}:")


async def test_a_temporary_refusal_is_retried_and_a_permanent_one_is_not(
    mail: RecordingHandler,
    report_settings: Settings,
    pool: AsyncConnectionPool,
    conn: psycopg.AsyncConnection[Any],
    log: io.StringIO,
) -> None:
    mail.replies.extend(["451 4.3.0 Mailbox temporarily unavailable", "554 5.7.1 Message rejected as spam"])
    settings = replace(report_settings, report_cron="30 5 * * *")
    reported = D - dt.timedelta(days=1)
    first = _local(D, "05:31")

    assert await send_due_report(pool, settings, first) is Outcome.RETRYING
    row = await _delivery(conn, reported)
    assert row is not None
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "451 4.3.0 Mailbox temporarily unavailable" in row["last_error"]

    assert await send_due_report(pool, settings, first + dt.timedelta(minutes=2)) is Outcome.FAILED
    assert await send_due_report(pool, settings, first + dt.timedelta(minutes=30)) is Outcome.BUSY

    row = await _delivery(conn, reported)
    assert row is not None
    assert (row["status"], row["attempts"]) == ("failed", 2)
    assert "554 5.7.1 Message rejected as spam" in row["last_error"]
    assert mail.refusals == ["451 4.3.0 Mailbox temporarily unavailable", "554 5.7.1 Message rejected as spam"]
    assert mail.messages() == []
    events = [(line["event"], line["level"]) for line in _lines(log) if "daily report" in line["event"]]
    assert events == [
        ("daily report not sent, will retry", "warning"),
        ("daily report refused, not retried", "error"),
    ]
    [refused] = [line for line in _lines(log) if line["event"] == "daily report refused, not retried"]
    assert "554 5.7.1 Message rejected as spam" in refused["reply"]
    assert refused["report_day"] == reported.isoformat()


async def test_a_report_still_pending_when_its_day_ends_is_recorded_missed(
    report_settings: Settings, pool: AsyncConnectionPool, conn: psycopg.AsyncConnection[Any], mail: RecordingHandler
) -> None:
    settings = replace(report_settings, smtp_url=f"smtp://127.0.0.1:{free_port()}", report_cron="30 5 * * *")
    assert await send_due_report(pool, settings, _local(D, "23:50")) is Outcome.RETRYING
    assert await send_due_report(pool, settings, _local(D + dt.timedelta(days=1), "00:10")) is Outcome.NOT_DUE

    settings = replace(settings, smtp_url=report_settings.smtp_url)
    assert await send_due_report(pool, settings, _local(D + dt.timedelta(days=1), "05:31")) is Outcome.SENT

    missed = await _delivery(conn, D - dt.timedelta(days=1))
    sent = await _delivery(conn, D)
    assert missed is not None
    assert sent is not None
    assert (missed["status"], sent["status"]) == ("missed", "sent")
    assert [r.message["Subject"].split(":")[0] for r in mail.messages()] == [f"Delivery report {D.isoformat()}"]


async def test_concurrent_ticks_send_one_report(
    report_settings: Settings, pool: AsyncConnectionPool, conn: psycopg.AsyncConnection[Any], mail: RecordingHandler
) -> None:
    mail.delay_s = 0.5  # the first sender is still talking to the server when the others look
    settings = replace(report_settings, report_cron="0 0 * * *")
    now = _local(D, "09:00")

    outcomes = await asyncio.gather(*(send_due_report(pool, settings, now) for _ in range(4)))

    assert sorted(outcomes) == sorted([Outcome.SENT, Outcome.BUSY, Outcome.BUSY, Outcome.BUSY])
    assert len(mail.messages()) == 1
    row = await _delivery(conn, D - dt.timedelta(days=1))
    assert row is not None
    assert (row["status"], row["attempts"]) == ("sent", 1)


def test_the_smtp_password_is_kept_out_of_the_settings_repr_and_errors() -> None:
    settings = load_settings({"NOTIFICATION_SMTP_URL": f"smtp://{USER}:{PASSWORD}@mail.example.org:587"})
    assert PASSWORD not in repr(settings)
    with pytest.raises(ValueError, match="SMTP_URL must look like") as bad:
        load_settings({"NOTIFICATION_SMTP_URL": f"http://{USER}:{PASSWORD}@mail.example.org"})
    assert PASSWORD not in str(bad.value)
    with pytest.raises(ValueError, match="REPORT_TIMEZONE"):
        load_settings({"NOTIFICATION_REPORT_TIMEZONE": "Mars/Olympus"})
    with pytest.raises(ValueError, match="REPORT_CRON"):
        load_settings({"NOTIFICATION_REPORT_CRON": "every morning"})
    assert load_settings({"NOTIFICATION_REPORT_RECIPIENTS": "a@example.org, b@example.org"}).report_recipients == (
        "a@example.org",
        "b@example.org",
    )


async def test_a_recipient_refused_among_others_does_not_stop_the_report(
    mail: RecordingHandler, report_settings: Settings, pool: AsyncConnectionPool, conn: psycopg.AsyncConnection[Any]
) -> None:
    gone = "left-the-company@example.com"
    mail.unknown_recipients.add(gone)
    settings = replace(report_settings, report_recipients=(gone, RECIPIENT), report_cron="30 5 * * *")

    assert await send_due_report(pool, settings, _local(D, "05:31")) is Outcome.SENT

    [received] = mail.messages()
    assert received.recipients == [RECIPIENT]
    row = await _delivery(conn, D - dt.timedelta(days=1))
    assert row is not None
    assert row["status"] == "sent"
