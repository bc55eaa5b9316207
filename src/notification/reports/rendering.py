"""The report as an email: a plain-text part and an HTML part carrying the same figures. The HTML
is styled inline (mail clients drop style sheets) and loads nothing: no script, no image, no link."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Sequence
from email.message import EmailMessage
from functools import lru_cache
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined

from notification.reports.content import DailyReport, DayMailing

STATUS_COLUMNS = ("pending", "sent", "failed", "expired", "cancelled")
MAILING_COLUMNS = ("mailing", "audience", "sent that day", *STATUS_COLUMNS, "start", "end", "text")
RATE_MEANING = "sent among sent, failed and expired"
RECEIPT_MEANING = "delivered among the messages a receipt or the receipt timeout decided"
SUBJECT_PREFIX = "Delivery report"


def subject(report: DailyReport) -> str:
    # Short enough to stay on the Subject line: a folded subject reads with a leading space in some clients.
    rate = percent(report.delivery_rate)
    return f"{SUBJECT_PREFIX} {report.day.isoformat()}: {report.sent_that_day} sent, {rate} delivered"


def percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f} %"


def _delivered(report: DailyReport) -> str:
    d = report.by_delivery_state
    if report.receipt_rate is None:
        return "n/a"
    return f"{percent(report.receipt_rate)}: {d.delivered} delivered, {d.undelivered} undelivered, {d.unknown} unknown"


def _local(report: DailyReport, instant: dt.datetime) -> str:
    return instant.astimezone(ZoneInfo(report.timezone)).strftime("%Y-%m-%d %H:%M")


def _mailing_cells(report: DailyReport, mailing: DayMailing) -> list[str]:
    counts = mailing.by_status
    return [
        f"#{mailing.mailing_id}",
        str(mailing.audience),
        str(mailing.sent_that_day),
        *(str(getattr(counts, status)) for status in STATUS_COLUMNS),
        _local(report, mailing.start_at),
        _local(report, mailing.end_at),
        mailing.text_head,
    ]


def _total_cells(report: DailyReport) -> list[str]:
    counts = report.by_status
    return [
        "total",
        str(report.audience),
        str(report.sent_that_day),
        *(str(getattr(counts, status)) for status in STATUS_COLUMNS),
        "",
        "",
        "",
    ]


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: range) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        padded = (cell.rjust(width) if i in numeric else cell.ljust(width) for i, (cell, width) in pairs)
        return "  " + "  ".join(padded).rstrip()

    return [line(header), *(line(row) for row in rows)]


def render_text(report: DailyReport) -> str:
    day_name = report.day.strftime("%A")
    lines = [
        f"Delivery report for {day_name} {report.day.isoformat()} ({report.timezone})",
        f"The day from {_local(report, report.day_start)} to {_local(report, report.day_end)} {report.timezone};"
        f" counts by status as of {_local(report, report.generated_at)}.",
        "",
        f"  mailings active   {len(report.mailings)}",
        f"  audience          {report.audience}",
        f"  sent that day     {report.sent_that_day}",
        f"  delivery rate     {percent(report.delivery_rate)} ({RATE_MEANING})",
        f"  delivered         {_delivered(report)} ({RECEIPT_MEANING})",
        "",
        "Mailings active that day",
    ]
    if report.mailings:
        rows = [_mailing_cells(report, m) for m in report.mailings]
        lines += _text_table(MAILING_COLUMNS, [*rows, _total_cells(report)], numeric=range(1, 8))
    else:
        lines.append("  none")
    lines += ["", "Top error kinds (last error of the messages not sent)"]
    if report.error_kinds:
        kinds = [(kind, str(count)) for kind, count in report.error_kinds]
        lines += _text_table(("kind", "messages"), kinds, numeric=range(1, 2))
    else:
        lines.append("  none")
    lines += ["", "Mailings that ended with messages never sent"]
    for m in report.ended_unsent:
        counts = m.by_status
        lines.append(
            f"  #{m.mailing_id} ended {_local(report, m.end_at)}: {m.unsent} never sent"
            f" (pending {counts.pending}, failed {counts.failed}, expired {counts.expired})"
        )
    if not report.ended_unsent:
        lines.append("  none")
    lines += ["", "Schedules active that day (messages: the sum of all their occurrences)"]
    for sc in report.schedules:
        counts = sc.by_status
        lines.append(
            f"  #{sc.schedule_id} {sc.name}: {sc.occurrences_that_day} occurrence(s) that day, {sc.occurrences} in all;"
            f" sent {counts.sent}, pending {counts.pending}, failed {counts.failed}, expired {counts.expired},"
            f" cancelled {counts.cancelled}"
        )
    if not report.schedules:
        lines.append("  none")
    opt_outs = report.opt_outs
    lines += [
        "",
        "Opt-outs that day",
        f"  stop words        {opt_outs.stop_words}",
        f"  suppressed        {opt_outs.suppressed} (every reason, stop words included)",
        f"  consents revoked  {opt_outs.consents_revoked}",
    ]
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=1)
def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("notification.reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: DailyReport) -> str:
    return (
        _templates()
        .get_template("daily_report.html")
        .render(
            report=report,
            subject=subject(report),
            columns=MAILING_COLUMNS,
            rows=[_mailing_cells(report, m) for m in report.mailings],
            total=_total_cells(report),
            rate=percent(report.delivery_rate),
            rate_meaning=RATE_MEANING,
            delivered=_delivered(report),
            delivered_meaning=RECEIPT_MEANING,
            local=lambda instant: _local(report, instant),
        )
    )


def compose(report: DailyReport, sender: str, recipients: Sequence[str], message_id: str | None = None) -> EmailMessage:
    """The email of a report; a scheduled report passes a Message-ID of its own day, so that a
    resend after a crash between the server's acceptance and our record reads as the same mail."""
    message = EmailMessage()
    message["Subject"] = subject(report)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = email.utils.format_datetime(report.generated_at)
    message["Message-ID"] = message_id or email.utils.make_msgid(idstring="report", domain=_domain(sender))
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(render_text(report))
    message.add_alternative(render_html(report), subtype="html")
    return message


def scheduled_message_id(report_day: dt.date, sender: str) -> str:
    return f"<daily-report.{report_day.isoformat()}@{_domain(sender)}>"


def _domain(address: str) -> str:
    _, parsed = email.utils.parseaddr(address)
    return parsed.rpartition("@")[2] or "localhost"
