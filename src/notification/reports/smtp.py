"""Sending mail with aiosmtplib, and telling a refusal worth retrying from a final one.

The SMTP URL carries the password: it is parsed here once, kept out of every repr, and only the
scheme, host and port (:meth:`SmtpTarget.describe`) ever reach a log line or an error."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    """``smtps://``: TLS from the first byte; otherwise STARTTLS whenever the server offers it."""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    allow_plaintext_auth: bool = False
    """Send the password even to a server that offers no STARTTLS (``NOTIFICATION_SMTP_ALLOW_PLAINTEXT_AUTH``)."""

    @property
    def requires_tls(self) -> bool:
        """Credentials travel only encrypted: STARTTLS is demanded, not merely taken when offered."""
        return not self.implicit_tls and self.username is not None and not self.allow_plaintext_auth

    def describe(self) -> str:
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port}"


def parse_smtp_url(url: str, *, allow_plaintext_auth: bool = False) -> SmtpTarget:
    """``smtp://user:pass@host:587``, ``smtps://user:pass@host:465``, ``smtp://host:25``."""
    bad = ValueError("the SMTP URL must look like smtp://user:password@host:587 or smtps://host:465")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise bad from None
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise bad
    implicit_tls = parts.scheme == "smtps"
    return SmtpTarget(
        host=parts.hostname,
        port=port or (465 if implicit_tls else 25),
        implicit_tls=implicit_tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        allow_plaintext_auth=allow_plaintext_auth,
    )


class SmtpFailure(Exception):
    """The server could not be reached or did not take the message. ``temporary``: worth trying
    again later (no answer, or a 4xx reply); otherwise a 5xx reply that will not change by itself."""

    def __init__(self, description: str, *, temporary: bool) -> None:
        super().__init__(description)
        self.description = description
        self.temporary = temporary


async def send_email(
    target: SmtpTarget, message: EmailMessage, recipients: Sequence[str], timeout_s: float
) -> list[str]:
    """Hands the message to the server; returns the recipients it refused while taking it for
    the others (one refused address must not cost everybody their report)."""
    try:
        refused, _ = await aiosmtplib.send(
            message,
            recipients=list(recipients),
            hostname=target.host,
            port=target.port,
            use_tls=target.implicit_tls,
            start_tls=False if target.implicit_tls else (True if target.requires_tls else None),
            username=target.username,
            password=target.password,
            timeout=timeout_s,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        replies = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        temporary = any(400 <= r.code < 500 for r in exc.recipients)
        raise SmtpFailure(f"every recipient refused: {replies}", temporary=temporary) from None
    except aiosmtplib.SMTPResponseException as exc:
        # Connection-level problems carry no reply code worth reading: never final.
        temporary = not 500 <= exc.code < 600
        raise SmtpFailure(f"{target.describe()} replied {exc.code} {exc.message}", temporary=temporary) from None
    except ssl.SSLCertVerificationError as exc:
        description = f"{target.describe()}: TLS certificate refused: {exc.verify_message}"
        raise SmtpFailure(description, temporary=False) from None
    except aiosmtplib.SMTPNotSupported as exc:
        # e.g. a password configured and a server that offers no AUTH: a configuration to fix.
        raise SmtpFailure(f"{target.describe()}: {exc.message}", temporary=False) from None
    except aiosmtplib.SMTPException as exc:
        if target.requires_tls and "STARTTLS" in str(exc):
            # The password stays here: a server that cannot encrypt it will not get it.
            description = f"{target.describe()} offers no STARTTLS: the password is not sent in cleartext"
            raise SmtpFailure(description, temporary=False) from None
        raise SmtpFailure(f"{target.describe()} unreachable: {_reason(exc)}", temporary=True) from None
    except OSError as exc:
        raise SmtpFailure(f"{target.describe()} unreachable: {_reason(exc)}", temporary=True) from None
    return sorted(refused)


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
