"""The example providers of ``notification dev``: the fake HTTP provider and the fake SMSC, stored
with an example route when no provider is stored yet (one stored by hand is never touched)."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from notification.lib.sql import load

statements = load(__package__, "example_providers.sql")

SMPP_OPERATOR_CODES = [str(code) for code in range(900, 930)]


def store_example_providers(conninfo: str, http_url: str, smsc_port: int) -> bool:
    """True when they were stored (the table was empty)."""
    with psycopg.connect(conninfo) as conn, conn.transaction():
        row = conn.execute(statements["providers_stored"]).fetchone()
        if row is not None and row[0]:
            return False
        providers = [
            ("fake-http", "http", {"url": http_url}, 10),
            ("fake-smsc", "smpp", {"host": "127.0.0.1", "port": smsc_port, "system_id": "notification"}, 50),
        ]
        for name, kind, settings, window in providers:
            params = {"name": name, "kind": kind, "settings": Jsonb(settings), "window": window}
            conn.execute(statements["store_provider"], params)
        routes = [(SMPP_OPERATOR_CODES, ["fake-smsc", "fake-http"]), (None, ["fake-http"])]
        for position, (codes, names) in enumerate(routes):
            conn.execute(statements["store_route"], {"position": position, "operator_codes": codes, "providers": names})
    return True
