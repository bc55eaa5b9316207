"""The fake provider and a real worker, as the delivery tests use them."""

from tests.delivery.conftest import fake_provider, start_worker

__all__ = ("fake_provider", "start_worker")
