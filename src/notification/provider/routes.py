"""Routes: the ordered rules that choose a message's providers by its operator code or phone.

The first rule that matches a message names its providers, in the order they are tried; a rule
with neither operator codes nor prefixes matches every message. A message no rule matches goes to
the default provider (with stored providers, the first enabled one in the order they were added).
Disabled providers are left out of every list: they take nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEFAULT_PROVIDER = "default"
"""The provider of the ``NOTIFICATION_PROVIDER_*`` settings, the one used while none is stored."""


@dataclass(frozen=True, slots=True)
class RouteRule:
    operator_codes: frozenset[str] | None
    phone_prefixes: tuple[str, ...] | None
    providers: tuple[str, ...]

    def matches(self, operator_code: str | None, phone: str) -> bool:
        if self.operator_codes is not None and operator_code not in self.operator_codes:
            return False
        return self.phone_prefixes is None or phone.startswith(self.phone_prefixes)


class Router:
    """The providers to try for a message, first to last, among the enabled ones."""

    def __init__(self, rules: Iterable[RouteRule], enabled: Iterable[str], default: str | None) -> None:
        usable = set(enabled)
        self._rules = [
            RouteRule(r.operator_codes, r.phone_prefixes, tuple(p for p in r.providers if p in usable)) for r in rules
        ]
        self._fallback: tuple[str, ...] = (default,) if default is not None and default in usable else ()

    def candidates(self, operator_code: str | None, phone: str) -> tuple[str, ...]:
        for rule in self._rules:
            if rule.matches(operator_code, phone):
                return rule.providers
        return self._fallback

    def first_choice(self, operator_code: str | None, phone: str) -> str | None:
        """The provider a message's first attempt goes to (None: no enabled provider takes it)."""
        names = self.candidates(operator_code, phone)
        return names[0] if names else None

    @property
    def phone_prefixes(self) -> frozenset[str]:
        """Every prefix a rule names: a phone stands for all phones starting with the longest of
        them it starts with (or with none), so counting by that prefix routes exactly."""
        return frozenset(p for rule in self._rules for p in rule.phone_prefixes or ())


def stored_router(
    providers: Sequence[tuple[str, bool]], rules: Iterable[RouteRule], settings_default: str = DEFAULT_PROVIDER
) -> Router:
    """The router of the stored providers ((name, enabled), in the order they were added) and
    routes; with no provider stored, the routes are not read and everything goes to the settings'
    provider."""
    if not providers:
        return Router([], [settings_default], settings_default)
    default = next((name for name, enabled in providers if enabled), None)
    return Router(rules, [name for name, enabled in providers if enabled], default)


def rule_of(
    operator_codes: Sequence[str] | None, phone_prefixes: Sequence[str] | None, providers: Sequence[str]
) -> RouteRule:
    return RouteRule(
        frozenset(operator_codes) if operator_codes else None,
        tuple(phone_prefixes) if phone_prefixes else None,
        tuple(providers),
    )
