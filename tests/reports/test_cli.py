"""``notification report show|send`` for operators, and the mailbox ``notification dev`` keeps."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from notification.config import PREFIX, Settings, get_settings
from notification.dev.mail_server import SmtpServer, dev_mail_banner, start_dev_mail
from notification.reports.cli import report_group
from notification.reports.mailbox import recent_dev_reports
from tests.conftest import PROJECT_ROOT
from tests.reports.conftest import RECIPIENT, SENDER, RecordingHandler

PASSWORD = "cli-s3cret-never-printed"
DAY = "2026-03-10"


@pytest.fixture
def prepared(settings: Settings) -> int:
    """One mailing on 10 March (UTC): 3 sent that day, 1 failed."""
    with psycopg.connect(settings.psycopg_conninfo, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO mailings (text, encoding, parts, start_at, end_at)"
            " VALUES ('Tuesday news', 'GSM-7', 1, %s, %s) RETURNING id",
            (dt.datetime(2026, 3, 10, 9, tzinfo=dt.UTC), dt.datetime(2026, 3, 10, 17, tzinfo=dt.UTC)),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO messages (mailing_id, status, sent_at, last_error, error_kind)"
            " SELECT %s, s, CASE WHEN s = 'sent' THEN %s::timestamptz END,"
            "        CASE WHEN s = 'failed' THEN 'HTTP 400: bad phone' END,"
            "        CASE WHEN s = 'failed' THEN 'http_4xx' END"
            " FROM unnest(ARRAY['sent', 'sent', 'sent', 'failed']) s",
            (row[0], dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)),
        )
        return int(row[0])


def _env(settings: Settings, **values: str) -> dict[str, str]:
    return {
        f"{PREFIX}DATABASE_URL": settings.psycopg_conninfo,
        f"{PREFIX}REPORT_FROM": SENDER,
        f"{PREFIX}LOG_LEVEL": "WARNING",
        **{PREFIX + key: value for key, value in values.items()},
    }


def _invoke(args: list[str], env: dict[str, str]) -> Result:
    """The command in this process, reading the environment CliRunner sets for it."""
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(report_group, args, env=env)
    finally:
        get_settings.cache_clear()


def test_report_show_prints_the_text_part_through_the_notification_command(settings: Settings, prepared: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env.update(_env(settings))
    shown = subprocess.run(
        [sys.executable, "-m", "notification", "report", "show", "--date", DAY],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"Delivery report for Tuesday {DAY} (UTC)\n")
    table = shown.stdout.split("Mailings active that day")[1].split("Top error kinds")[0]
    [row] = [line.split() for line in table.splitlines() if line.startswith(f"  #{prepared} ")]
    assert row[1:8] == ["4", "3", "0", "3", "1", "0", "0"]
    assert "delivery rate     75.0 %" in shown.stdout


def test_report_send_delivers_to_the_addresses_given(
    settings: Settings, prepared: int, smtp_server: SmtpServer, mail: RecordingHandler
) -> None:
    result = _invoke(
        ["send", "--date", DAY, "--to", "a@example.org", "--to", "b@example.org"],
        env=_env(settings, SMTP_URL=smtp_server.url, REPORT_RECIPIENTS=RECIPIENT),
    )

    assert result.exit_code == 0, result.output
    assert result.output == f"report of {DAY} (UTC) sent to a@example.org, b@example.org via {smtp_server.url}\n"
    [received] = mail.messages()
    assert received.recipients == ["a@example.org", "b@example.org"]
    assert received.message["Subject"] == f"Delivery report {DAY}: 3 sent, 75.0 % delivered"
    assert f"#{prepared}" in received.text()


def test_report_send_fails_clearly_without_showing_the_password(settings: Settings, prepared: int) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = _invoke(
        ["send", "--date", DAY],
        env=_env(settings, SMTP_URL=f"smtp://reporter:{PASSWORD}@127.0.0.1:{port}", REPORT_RECIPIENTS=RECIPIENT),
    )

    assert result.exit_code == 1
    assert f"report not sent (temporary failure, try again later): smtp://127.0.0.1:{port} unreachable" in result.output
    assert PASSWORD not in result.output

    without = _invoke(["send"], env=_env(settings, SMTP_URL="smtp://127.0.0.1:25"))
    assert without.exit_code == 2
    assert "no recipient: pass --to ADDRESS or set NOTIFICATION_REPORT_RECIPIENTS" in without.output


def test_the_dev_mailbox_keeps_reports_for_the_console(
    settings: Settings, prepared: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SMTP_URL", "REPORT_RECIPIENTS"):  # set by start_dev_mail; put back as they were afterwards
        monkeypatch.setenv(PREFIX + name, "")
        monkeypatch.delenv(PREFIX + name)
    dev_settings = replace(settings, data_dir=tmp_path / "data")
    server = start_dev_mail(dev_settings, 0)
    assert server is not None
    try:
        # What `dev` hands to the worker it starts next.
        assert os.environ[f"{PREFIX}SMTP_URL"] == server.url
        assert os.environ[f"{PREFIX}REPORT_RECIPIENTS"] == "operators@localhost"
        banner = "\n".join(dev_mail_banner(replace(dev_settings, report_recipients=("operators@localhost",)), server))
        assert str((tmp_path / "data" / "mail").resolve()) in banner
        assert "to operators@localhost" in banner
        for day in ("2026-03-09", DAY):
            result = _invoke(["send", "--date", day], env=_env(settings))
            assert result.exit_code == 0, result.output
    finally:
        server.stop()

    reports = recent_dev_reports(dev_settings, limit=5)
    assert [r.subject for r in reports] == [
        f"Delivery report {DAY}: 3 sent, 75.0 % delivered",
        "Delivery report 2026-03-09: 0 sent, n/a delivered",
    ]
    assert all(r.path.parent == tmp_path / "data" / "mail" and r.path.suffix == ".eml" for r in reports)
    assert reports[0].text.startswith(f"Delivery report for Tuesday {DAY} (UTC)")
    assert reports[0].date is not None
    assert recent_dev_reports(dev_settings, limit=1) == reports[:1]
    assert start_dev_mail(replace(dev_settings, smtp_url="smtp://mail.example.org:25"), 0) is None
