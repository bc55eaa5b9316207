"""The schedules' dependencies, as Litestar injects them."""

from __future__ import annotations

from advanced_alchemy.extensions.litestar.providers import create_service_provider

from notification.schedules.service import ScheduleService

provide_schedule_service = create_service_provider(ScheduleService)

__all__ = ("provide_schedule_service",)
