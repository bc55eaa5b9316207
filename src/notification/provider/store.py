"""What a worker reads of the stored providers and routes: their specs (secrets decrypted here, for
the provider that uses them and nothing else), the rules, and the version that says when to read
them again."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from notification.lib.sql import load
from notification.provider.registry import ProviderSpec
from notification.provider.routes import RouteRule, rule_of
from notification.provider.secrets import SecretBox, SecretsUnavailable

logger = structlog.get_logger(__name__)

statements = load(__package__, "store.sql")


@dataclass(frozen=True, slots=True)
class StoredConfig:
    version: int
    providers: list[ProviderSpec]
    """Empty: none is stored, the ``NOTIFICATION_PROVIDER_*`` settings describe the provider."""
    rules: list[RouteRule]


async def config_version(conn: AsyncConnection) -> int:
    row = await (await conn.execute(statements["config_version"])).fetchone()
    return 0 if row is None else int(row[0])


async def read_config(conn: AsyncConnection, box: SecretBox) -> StoredConfig:
    """One consistent read of providers and routes (a repeatable-read snapshot)."""
    async with conn.transaction():
        await conn.execute(statements["snapshot"])
        version = await config_version(conn)
        cur = conn.cursor(row_factory=dict_row)
        rows = await (await cur.execute(statements["stored_providers"])).fetchall()
        route_rows = await (await cur.execute(statements["stored_routes"])).fetchall()
    specs = []
    for row in rows:
        secret = ""
        if row["secret"] is not None:
            try:
                secret = box.open(row["secret"])
            except SecretsUnavailable as exc:
                # Its name and why, never the stored text: it is taken out of service instead.
                logger.error("provider left out: its secret cannot be read", provider=row["name"], error=str(exc))
                continue
        specs.append(
            ProviderSpec(
                row["name"],
                row["kind"],
                row["concurrency"],
                row["rate_limit"],
                row["settings"],
                secret,
                row["window_size"],
                row["binds"],
                row["enabled"],
            )
        )
    rules = [rule_of(r["operator_codes"], r["phone_prefixes"], r["providers"]) for r in route_rows]
    return StoredConfig(version, specs, rules)
