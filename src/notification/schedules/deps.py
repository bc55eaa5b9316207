"""The schedules' dependencies, as Litestar injects them."""

from __future__ import annotations

from typing import Annotated

from advanced_alchemy.extensions.litestar.providers import create_service_provider

from notification.pagination import bigint_parameter
from notification.schedules.service import ScheduleService

provide_schedule_service = create_service_provider(ScheduleService)

ScheduleId = Annotated[int, bigint_parameter("Schedule id")]
"""A schedule's id in a path."""

__all__ = ("ScheduleId", "provide_schedule_service")
