"""The providers of a process, by name: built from the stored providers, or from the settings when
none is stored, opened and closed together.

The sending path, test sends and the worker's metrics take their provider, and its rate budget,
from here and from nowhere else. With no row in ``providers``, the ``NOTIFICATION_PROVIDER_*``
variables describe one provider, ``default``, of kind ``http``: a deployment configured by them
alone sends as it always did.

A new kind of provider plugs in by implementing :class:`~notification.provider.base.Provider` and
adding its builder to :data:`PROVIDER_KINDS`; the settings then name providers of that kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from notification.config import Settings
from notification.provider.base import Provider
from notification.provider.http import KIND as HTTP
from notification.provider.http import HttpProvider
from notification.provider.rate_limit import RateBudget
from notification.provider.routes import DEFAULT_PROVIDER, RouteRule

SMPP = "smpp"


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """What the settings or the ``providers`` table say of one provider: its name, its kind, its
    limits, its kind's own settings and its secret (decrypted; never shown)."""

    name: str
    kind: str
    concurrency: int
    """Requests in flight to it from one process at most (HTTP)."""
    rate_limit: float | None
    """SMS parts per second shared by every process (None: no limit)."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    secret: str = field(default="", repr=False)
    window: int = 10
    """Submits in flight on one bind (SMPP)."""
    binds: int = 1
    """Binds the account allows at once, every process together (SMPP)."""
    enabled: bool = True


ProviderBuilder = Callable[[ProviderSpec, Settings], Provider]
"""Builds a provider of one kind from its spec; the settings give what its spec leaves out."""


def _http_provider(spec: ProviderSpec, settings: Settings) -> Provider:
    timeout_s = float(spec.settings.get("timeout_s", settings.provider_timeout_s))
    return HttpProvider(spec.name, str(spec.settings["url"]), spec.secret, timeout_s, spec.concurrency)


def _smpp_provider(spec: ProviderSpec, settings: Settings) -> Provider:
    from notification.inbound.service import receive_from_smpp
    from notification.provider.smpp import InboundMessage, SmppProvider, SmppSettings
    from notification.provider.smpp_slots import PgBindSlots
    from notification.receipts.smpp import DeliverHook

    smpp = msgspec.convert(
        {**spec.settings, "password": spec.secret, "window": spec.window, "binds": spec.binds}, SmppSettings
    )

    async def mobile_originated(inbound: InboundMessage) -> None:
        await receive_from_smpp(settings, inbound.provider, inbound.source_addr, inbound.text, inbound.received_at)

    # Receipts and messages from phones are stored, and each deliver_sm answered only then, by the
    # hook; it closes with the provider.
    hook = DeliverHook(spec.name, settings.psycopg_conninfo, mobile_originated)
    return SmppProvider(
        spec.name, smpp, slots=PgBindSlots(settings.psycopg_conninfo, spec.name, spec.binds), on_deliver=hook
    )


PROVIDER_KINDS: dict[str, ProviderBuilder] = {HTTP: _http_provider, SMPP: _smpp_provider}


def configured_providers(settings: Settings) -> list[ProviderSpec]:
    """The provider of the ``NOTIFICATION_PROVIDER_*`` variables: the one used when none is stored."""
    return [
        ProviderSpec(
            DEFAULT_PROVIDER,
            HTTP,
            settings.provider_concurrency,
            settings.provider_rate_limit,
            {"url": settings.provider_url, "timeout_s": settings.provider_timeout_s},
            settings.provider_token,
        )
    ]


def build_provider(
    spec: ProviderSpec, settings: Settings, kinds: Mapping[str, ProviderBuilder] | None = None
) -> RegisteredProvider:
    """One provider and its rate budget, from its spec."""
    builders = PROVIDER_KINDS if kinds is None else kinds
    if spec.kind not in builders:
        msg = f"provider {spec.name!r} is of kind {spec.kind!r}, which none of {sorted(builders)} is"
        raise ValueError(msg)
    provider = builders[spec.kind](spec, settings)
    return RegisteredProvider(provider, spec, RateBudget(spec.name, spec.rate_limit, settings.psycopg_conninfo))


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
        self.rules: list[RouteRule] = []
        """The stored routes, when the providers are the stored ones."""

    @classmethod
    def from_settings(cls, settings: Settings, kinds: Mapping[str, ProviderBuilder] | None = None) -> ProviderRegistry:
        return cls.from_specs(configured_providers(settings), settings, kinds)

    @classmethod
    def from_specs(
        cls, specs: Sequence[ProviderSpec], settings: Settings, kinds: Mapping[str, ProviderBuilder] | None = None
    ) -> ProviderRegistry:
        """The default is the first enabled one (the first of all when none is enabled)."""
        registered = [build_provider(spec, settings, kinds) for spec in specs]
        default = next((s.name for s in specs if s.enabled), specs[0].name)
        return cls(registered, default)

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
