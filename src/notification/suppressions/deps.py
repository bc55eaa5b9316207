"""The suppression list's dependencies, as Litestar injects them."""

from __future__ import annotations

from typing import Annotated

from advanced_alchemy.extensions.litestar.providers import create_service_provider
from litestar.params import Parameter

from notification.suppressions.service import SuppressionService

provide_suppression_service = create_service_provider(SuppressionService)

SuppressedPhone = Annotated[
    str, Parameter(pattern=r"^7[0-9]{10}$", min_length=11, max_length=11, description="7 followed by 10 digits")
]
"""A suppressed number in a path."""

__all__ = ("SuppressedPhone", "provide_suppression_service")
