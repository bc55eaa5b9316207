"""The providers of a process, by name: built from the settings, opened and closed together.

The sending path, test sends and the worker's metrics take their provider, and its rate budget,
from here and from nowhere else. Today the settings name one provider, ``default``, of kind
``http``, from the ``NOTIFICATION_PROVIDER_*`` variables.

A new kind of provider plugs in by implementing :class:`~notification.provider.base.Provider` and
adding its builder to :data:`PROVIDER_KINDS`; the settings then name providers of that kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from notification.config import Settings
from notification.provider.base import Provider
from notification.provider.http import KIND as HTTP
from notification.provider.http import HttpProvider
from notification.provider.rate_limit import RateBudget

DEFAULT_PROVIDER = "default"
"""The provider of the ``NOTIFICATION_PROVIDER_*`` settings (its rate budget's row was the only one)."""

ProviderBuilder = Callable[[str, Settings], Provider]
"""Builds a provider of one kind, given its name and the settings it reads its own part of."""

PROVIDER_KINDS: dict[str, ProviderBuilder] = {HTTP: HttpProvider.from_settings}


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """What the settings say of one provider: its name, its kind, and its limits."""

    name: str
    kind: str
    concurrency: int
    """Requests in flight to it from one process at most."""
    rate_limit: float | None
    """SMS parts per second shared by every process (None: no limit)."""


def configured_providers(settings: Settings) -> list[ProviderSpec]:
    """The providers the settings name; today the one of the ``NOTIFICATION_PROVIDER_*`` variables."""
    return [ProviderSpec(DEFAULT_PROVIDER, HTTP, settings.provider_concurrency, settings.provider_rate_limit)]


@dataclass(frozen=True, slots=True)
class RegisteredProvider:
    """A provider and what the senders keep beside it: its spec and its share of the rate budget."""

    provider: Provider
    spec: ProviderSpec
    budget: RateBudget

    @property
    def name(self) -> str:
        return self.spec.name


class ProviderRegistry:
    """The providers of one process by name; opened once (``open``) and closed once (``aclose``)."""

    def __init__(self, registered: Sequence[RegisteredProvider], default: str = DEFAULT_PROVIDER) -> None:
        self._by_name = {entry.name: entry for entry in registered}
        if len(self._by_name) != len(registered):
            msg = "two providers share a name"
            raise ValueError(msg)
        if default not in self._by_name:
            msg = f"no provider named {default!r} among {sorted(self._by_name)}"
            raise ValueError(msg)
        self.default = self._by_name[default]

    @classmethod
    def from_settings(cls, settings: Settings, kinds: dict[str, ProviderBuilder] | None = None) -> ProviderRegistry:
        builders = PROVIDER_KINDS if kinds is None else kinds
        registered = []
        for spec in configured_providers(settings):
            if spec.kind not in builders:
                msg = f"provider {spec.name!r} is of kind {spec.kind!r}, which none of {sorted(builders)} is"
                raise ValueError(msg)
            provider = builders[spec.kind](spec.name, settings)
            budget = RateBudget(spec.name, spec.rate_limit, settings.psycopg_conninfo)
            registered.append(RegisteredProvider(provider, spec, budget))
        return cls(registered)

    def __getitem__(self, name: str) -> RegisteredProvider:
        return self._by_name[name]

    def __iter__(self) -> Iterator[RegisteredProvider]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    async def open(self) -> None:
        for entry in self:
            await entry.provider.open()

    async def aclose(self) -> None:
        """Closes every provider and budget, even when one of them fails to close."""
        failures: list[BaseException] = []
        for entry in self:
            for close in (entry.budget.aclose, entry.provider.aclose):
                try:
                    await close()
                except Exception as exc:  # noqa: BLE001  (the others still close; raised below)
                    failures.append(exc)
        if failures:
            raise failures[0]
