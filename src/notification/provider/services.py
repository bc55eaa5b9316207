"""The providers and routes an administrator manages: each change committed with its audit row.

A secret is sealed before it is stored and never read back here; the audit row of a change says
that the secret changed, not what it became."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from notification.audit.models import AuditAction, AuditEntity
from notification.audit.trail import AuditTrail, snapshot
from notification.config import Settings
from notification.errors import Conflict, InvalidInput, NotFound
from notification.provider.callbacks import secret_problem
from notification.provider.models import ProviderRoute, StoredProvider
from notification.provider.schemas import ProviderRead, ProviderWrite, RouteRuleSchema
from notification.provider.secrets import SecretBox

SECRET_FIELDS = frozenset({"token", "password", "secret"})
SECRET_CHANGED = "changed"  # noqa: S105  (a word for the audit row, not a secret)
"""What the audit row says of a new secret: that it changed, never its value."""
NOT_SMPP = "not valid for an smpp provider"


def to_read(row: StoredProvider) -> ProviderRead:
    return ProviderRead(
        id=row.id,
        name=row.name,
        kind=row.kind,
        settings=dict(row.settings),
        secret_set=row.secret is not None,
        callback_secret_set=row.callback_secret is not None,
        rate_limit=row.rate_limit,
        concurrency=row.concurrency,
        window=row.window_size,
        binds=row.binds,
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def check_kind_settings(data: ProviderWrite) -> None:
    """The kind's settings, checked as the worker will read them, each error naming its field."""
    for key in data.settings:
        if key in SECRET_FIELDS:
            raise InvalidInput.of(f"settings.{key}", "a secret goes in `secret`, where it is stored encrypted")
    if data.kind == "http":
        url = data.settings.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidInput.of("settings.url", "must be the provider's http:// or https:// URL")
        timeout = data.settings.get("timeout_s", 10)
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidInput.of("settings.timeout_s", "must be a positive number of seconds")
        unknown = set(data.settings) - {"url", "timeout_s"}
        if unknown:
            raise InvalidInput.of(f"settings.{sorted(unknown)[0]}", "is not a setting of an http provider")
        return
    from notification.provider.smpp import SmppSettings

    try:
        msgspec.convert({**data.settings, "window": data.window, "binds": data.binds}, SmppSettings)
    except msgspec.ValidationError as exc:
        # msgspec names the path as "... - at `$.port`", or the missing field itself.
        text = str(exc)
        message = text.partition(" - at ")[0]
        missing = re.search(r"missing required field `(\w+)`", text)
        at = re.search(r"at `\$\.(\w+)", text)
        field = missing.group(1) if missing else at.group(1) if at else ""
        raise InvalidInput.of(f"settings.{field}" if field else "settings", f"{NOT_SMPP}: {message}") from None
    except ValueError as exc:
        raise InvalidInput.of("settings", f"{NOT_SMPP}: {exc}") from None


class ProviderService:
    def __init__(
        self, session: AsyncSession | async_scoped_session[AsyncSession], audit: AuditTrail, settings: Settings
    ) -> None:
        self.session = session
        self.audit = audit
        self.box = SecretBox.from_settings(settings)

    async def list_providers(self) -> list[ProviderRead]:
        rows = (await self.session.execute(select(StoredProvider).order_by(StoredProvider.id))).scalars()
        return [to_read(r) for r in rows]

    async def get(self, provider_id: int) -> StoredProvider:
        row = await self.session.get(StoredProvider, provider_id)
        if row is None:
            raise NotFound("provider", provider_id)
        return row

    def _sealed(self, secret: str, field: str = "secret") -> str:
        if not self.box.can_store:
            raise InvalidInput.of(field, "cannot be stored: NOTIFICATION_SECRET_KEY is not set")
        return self.box.seal(secret)

    def _sealed_callback_secret(self, secret: str) -> str | None:
        """An empty one removes it; a set one must be able to sign callbacks."""
        if not secret:
            return None
        if problem := secret_problem(secret):
            raise InvalidInput.of("callback_secret", problem)
        return self._sealed(secret, "callback_secret")

    async def _name_free(self, name: str, provider_id: int | None) -> None:
        found = (await self.session.execute(select(StoredProvider.id).where(StoredProvider.name == name))).scalar()
        if found is not None and found != provider_id:
            raise Conflict("name", f"a provider named {name!r} already exists")

    @staticmethod
    def _apply(row: StoredProvider, data: ProviderWrite) -> None:
        row.name, row.kind, row.settings = data.name, data.kind, data.settings
        row.rate_limit, row.concurrency, row.window_size = data.rate_limit, data.concurrency, data.window
        row.binds, row.enabled = data.binds, data.enabled

    async def create(self, data: ProviderWrite) -> ProviderRead:
        check_kind_settings(data)
        await self._name_free(data.name, None)
        row = StoredProvider()
        self._apply(row, data)
        row.secret = self._sealed(data.secret) if data.secret else None
        row.callback_secret = self._sealed_callback_secret(data.callback_secret or "")
        self.session.add(row)
        await self.session.flush([row])
        read = to_read(row)
        fields: dict[str, Any] = snapshot(read)
        if data.secret:
            fields["secret"] = SECRET_CHANGED
        if data.callback_secret:
            fields["callback_secret"] = SECRET_CHANGED
        await self.audit.created(AuditEntity.PROVIDER, row.id, fields)
        await self.session.commit()
        return read

    async def replace(self, provider_id: int, data: ProviderWrite) -> ProviderRead:
        row = await self.get(provider_id)
        check_kind_settings(data)
        await self._name_free(data.name, provider_id)
        if data.name != row.name:
            await self._not_routed(row.name, "name")
        before = snapshot(to_read(row))
        self._apply(row, data)
        if data.secret is not None:
            row.secret = self._sealed(data.secret) if data.secret else None
        if data.callback_secret is not None:
            row.callback_secret = self._sealed_callback_secret(data.callback_secret)
        await self.session.flush([row])
        await self.session.refresh(row)
        read = to_read(row)
        after: dict[str, Any] = snapshot(read)
        if data.secret is not None:
            before["secret"], after["secret"] = None, SECRET_CHANGED
        if data.callback_secret is not None:
            before["callback_secret"], after["callback_secret"] = None, SECRET_CHANGED
        await self.audit.updated(AuditEntity.PROVIDER, row.id, before, after)
        await self.session.commit()
        return read

    async def delete(self, provider_id: int) -> None:
        row = await self.get(provider_id)
        await self._not_routed(row.name, "id")
        fields = snapshot(to_read(row))
        await self.session.delete(row)
        await self.audit.deleted(AuditEntity.PROVIDER, provider_id, fields)
        await self.session.commit()

    async def _not_routed(self, name: str, field: str) -> None:
        rules = await self.routes()
        for position, rule in enumerate(rules):
            if name in rule.providers:
                raise Conflict(field, f"provider {name!r} is named by route {position}: change the routes first")

    async def routes(self) -> list[RouteRuleSchema]:
        rows = (await self.session.execute(select(ProviderRoute).order_by(ProviderRoute.position))).scalars()
        return [
            RouteRuleSchema(operator_codes=r.operator_codes, phone_prefixes=r.phone_prefixes, providers=r.providers)
            for r in rows
        ]

    async def replace_routes(self, rules: list[RouteRuleSchema]) -> list[RouteRuleSchema]:
        names = set((await self.session.execute(select(StoredProvider.name))).scalars())
        errors = [
            (f"[{i}].providers[{j}]", f"no provider named {name!r}")
            for i, rule in enumerate(rules)
            for j, name in enumerate(rule.providers)
            if name not in names
        ]
        errors += [
            (f"[{i}].phone_prefixes", "a rule matches operator codes or phone prefixes, not both")
            for i, rule in enumerate(rules)
            if rule.operator_codes and rule.phone_prefixes
        ]
        if errors:
            raise InvalidInput(errors)
        before = [msgspec.to_builtins(r) for r in await self.routes()]
        await self.session.execute(delete(ProviderRoute))
        self.session.add_all(
            ProviderRoute(
                position=i, operator_codes=r.operator_codes, phone_prefixes=r.phone_prefixes, providers=r.providers
            )
            for i, r in enumerate(rules)
        )
        await self.session.flush()
        after = [msgspec.to_builtins(r) for r in rules]
        await self.audit.record(AuditAction.UPDATE, AuditEntity.ROUTES, None, {"rules": (before, after)})
        await self.session.commit()
        return rules
