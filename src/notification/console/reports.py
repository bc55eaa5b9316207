"""The daily reports the development mail server received: ``notification dev`` keeps them in a
mailbox of its own, and this page shows the last ones with their text. Without that mailbox
(in production) the page does not exist."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.exceptions import NotFoundException
from litestar.response import Template

from notification.config import Settings
from notification.console.identity import require_admin
from notification.console.templating import dev_mailbox_shown, page
from notification.reports.mailbox import dev_mail_dir, recent_dev_reports

SHOWN = 10


class DevReportsController(Controller):
    path = "/reports"
    guards = [require_admin]

    @get("/")
    async def reports_page(self, request: Request[Any, Any, Any], console_settings: Settings) -> Template:
        if not dev_mailbox_shown(request):
            raise NotFoundException(detail="No development mailbox")
        return page(
            request,
            "reports.html",
            reports=recent_dev_reports(console_settings, SHOWN),
            mailbox=dev_mail_dir(console_settings),
            shown=SHOWN,
        )
