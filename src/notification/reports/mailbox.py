"""The development mailbox as the console reads it: the ``.eml`` files ``notification dev``'s mail
server keeps under ``<data dir>/mail/``. The folder exists only where that server ran, so the
console shows the reports received there only in development."""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from notification.config import Settings
from notification.reports.rendering import SUBJECT_PREFIX

MAIL_DIR = "mail"


def dev_mail_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / MAIL_DIR


@dataclass(frozen=True, slots=True)
class ReceivedReport:
    subject: str
    date: dt.datetime | None
    path: Path
    text: str
    """The report's plain-text part."""


def recent_dev_reports(settings: Settings, limit: int = 10) -> list[ReceivedReport]:
    """The reports the development mailbox received last, newest first (for the console)."""
    directory = dev_mail_dir(settings)
    if not directory.is_dir():
        return []
    reports: list[ReceivedReport] = []
    # Named after the moment they arrived: the name orders them.
    for path in sorted(directory.glob("*.eml"), reverse=True):
        received = _read_report(path)
        if received is not None:
            reports.append(received)
        if len(reports) == limit:
            break
    return reports


def _read_report(path: Path) -> ReceivedReport | None:
    with path.open("rb") as file:
        message = email.message_from_binary_file(file, _class=EmailMessage, policy=email.policy.default)
    subject = str(message.get("Subject", ""))
    if not subject.startswith(SUBJECT_PREFIX):
        return None
    date = None
    with contextlib.suppress(TypeError, ValueError):
        date = message["Date"].datetime if message["Date"] else None
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if isinstance(body, EmailMessage) else ""
    return ReceivedReport(subject=subject, date=date, path=path, text=text)
