"""The audiences' dependencies, as Litestar injects them."""

from __future__ import annotations

from typing import Annotated

from advanced_alchemy.extensions.litestar.providers import create_service_provider

from notification.audiences.service import AudienceService
from notification.pagination import bigint_parameter

provide_audience_service = create_service_provider(AudienceService)

AudienceId = Annotated[int, bigint_parameter("Audience id")]
"""An audience's id in a path."""

__all__ = ("AudienceId", "provide_audience_service")
