"""The mailings' dependencies, as Litestar injects them."""

from __future__ import annotations

from typing import Annotated

from advanced_alchemy.extensions.litestar.providers import create_service_provider

from notification.mailings.services import MailingService
from notification.pagination import bigint_parameter

provide_mailing_service = create_service_provider(MailingService)

MailingId = Annotated[int, bigint_parameter("Mailing id")]
"""A mailing's id in a path."""

__all__ = ("MailingId", "provide_mailing_service")
