"""The audit log: one row for each change made through the API or the console, with the right
actor, written in the change's transaction (a refused change leaves none), and readable through
``GET /api/v1/audit`` and the console's audit page."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar
from litestar.routes import HTTPRoute
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.api import Api
from tests.conftest import API_TOKEN
from tests.console_client import Console, csrf_of, local_input, mailing_form
from tests.sso.conftest import ADMIN, audit_rows, sign_in_through
from tests.sso.oidc import FakeOpenIDProvider, Script

TOKEN_ACTOR = f"api-token:{hashlib.sha256(API_TOKEN.encode()).hexdigest()[:4]}"
CHANGING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _mailing_body(text: str = "Winter sale") -> dict[str, Any]:
    start = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(hours=1)
    return {"text": text, "kind": "service", "start_at": _iso(start), "end_at": _iso(start + dt.timedelta(hours=1))}


def changing_routes(app: Litestar) -> set[tuple[str, str]]:
    """Every (method, path) of the app that may change something."""
    return {
        (method, route.path)
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for method in route.methods & CHANGING_METHODS
    }


@dataclass
class Session:
    """What the exercises share: an API client, a signed-in console, and the ids they made."""

    api: Api
    console: Console
    ids: dict[str, int] = field(default_factory=dict)

    async def api_call(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        answer = await self.api.request(method, path, headers={"Authorization": f"Bearer {API_TOKEN}"}, **kwargs)
        assert answer.status_code == status, answer.text
        return answer.json() if answer.content else None

    async def form(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> None:
        answer = await self.console.post(path, data, follow_redirects=False, **kwargs)
        assert answer.status_code == 303, answer.text


async def _api_client(s: Session) -> None:
    s.ids["api client"] = (
        await s.api_call("POST", "/api/v1/clients", 201, json={"phone": "79160000001", "timezone": "UTC"})
    )["id"]


async def _api_import(s: Session) -> None:
    rows = [{"phone": f"7916000010{i}", "timezone": "UTC"} for i in range(3)]
    await s.api_call("POST", "/api/v1/clients/bulk", 201, json=rows)


async def _api_patch_client(s: Session) -> None:
    await s.api_call("PATCH", f"/api/v1/clients/{s.ids['api client']}", 200, json={"tag": "vip"})


async def _api_put_client(s: Session) -> None:
    body = {"phone": "79160000001", "timezone": "Europe/Moscow", "tag": "vip"}
    await s.api_call("PUT", f"/api/v1/clients/{s.ids['api client']}", 200, json=body)


async def _api_delete_client(s: Session) -> None:
    await s.api_call("DELETE", f"/api/v1/clients/{s.ids['api client']}", 204)


async def _api_mailing(s: Session) -> None:
    s.ids["api mailing"] = (await s.api_call("POST", "/api/v1/mailings", 201, json=_mailing_body()))["id"]


async def _api_patch_mailing(s: Session) -> None:
    await s.api_call("PATCH", f"/api/v1/mailings/{s.ids['api mailing']}", 200, json={"text": "Winter sale, day 2"})


async def _api_put_mailing(s: Session) -> None:
    await s.api_call("PUT", f"/api/v1/mailings/{s.ids['api mailing']}", 200, json=_mailing_body("Last day"))


async def _api_pause_mailing(s: Session) -> None:
    await s.api_call("POST", f"/api/v1/mailings/{s.ids['api mailing']}/pause", 200)


async def _api_resume_mailing(s: Session) -> None:
    await s.api_call("POST", f"/api/v1/mailings/{s.ids['api mailing']}/resume", 200)


async def _api_retry_mailing(s: Session) -> None:
    await s.api_call("POST", f"/api/v1/mailings/{s.ids['api mailing']}/retry", 200, json={"statuses": ["failed"]})


async def _api_test_send(s: Session) -> None:
    # No provider listens here: the send fails, and the answer (a 200) says so; it is recorded all the same.
    await s.api_call("POST", f"/api/v1/mailings/{s.ids['api mailing']}/test", 200, json={"phone": "79160000009"})


async def _api_delete_mailing(s: Session) -> None:
    await s.api_call("DELETE", f"/api/v1/mailings/{s.ids['api mailing']}", 204)


_PROVIDER = {"name": "spare", "kind": "http", "settings": {"url": "http://127.0.0.1:9/v1"}}


async def _api_provider(s: Session) -> None:
    s.ids["api provider"] = (await s.api_call("POST", "/api/v1/providers", 201, json=_PROVIDER))["id"]


async def _api_put_provider(s: Session) -> None:
    await s.api_call("PUT", f"/api/v1/providers/{s.ids['api provider']}", 200, json={**_PROVIDER, "enabled": False})


async def _api_delete_provider(s: Session) -> None:
    await s.api_call("DELETE", f"/api/v1/providers/{s.ids['api provider']}", 204)


async def _api_routes(s: Session) -> None:
    # No provider is left: routes with none to name are still a change, and audited.
    await s.api_call("PUT", "/api/v1/routes", 200, json=[])


async def _console_sign_in(s: Session) -> None:
    await s.form("/admin/sign-in", {"token": API_TOKEN, "timezone": "Europe/Moscow"})
    s.console.csrf = csrf_of((await s.console.get("/admin")).text)


async def _console_client(s: Session) -> None:
    await s.form("/admin/clients", {"phone": "79160000002", "timezone": "UTC", "tag": "", "operator_code": ""})
    found = await s.api_call("GET", "/api/v1/clients", 200, params={"limit": 1000})
    s.ids["console client"] = next(c["id"] for c in found["items"] if c["phone"] == "79160000002")


async def _console_update_client(s: Session) -> None:
    form = {"phone": "79160000002", "timezone": "Asia/Tokyo", "tag": "new", "operator_code": ""}
    await s.form(f"/admin/clients/{s.ids['console client']}", form)


async def _console_delete_client(s: Session) -> None:
    await s.form(f"/admin/clients/{s.ids['console client']}/delete")


async def _console_import(s: Session) -> None:
    csv = b"phone,timezone\n79160000201,UTC\n79160000202,UTC\n"
    answer = await s.console.client.post(
        "/admin/clients/import",
        data={"_csrf_token": s.console.csrf},
        files={"file": ("clients.csv", csv, "text/csv")},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


async def _console_mailing(s: Session) -> None:
    answer = await s.console.post("/admin/mailings", mailing_form(text="Spring sale"), follow_redirects=False)
    assert answer.status_code == 303, answer.text
    s.ids["console mailing"] = int(answer.headers["location"].rsplit("/", 1)[1])


async def _console_update_mailing(s: Session) -> None:
    await s.form(f"/admin/mailings/{s.ids['console mailing']}", mailing_form(text="Spring sale, extended"))


async def _console_pause_mailing(s: Session) -> None:
    await s.form(f"/admin/mailings/{s.ids['console mailing']}/pause")


async def _console_resume_mailing(s: Session) -> None:
    await s.form(f"/admin/mailings/{s.ids['console mailing']}/resume")


_WEBHOOK = {"url": "http://127.0.0.1:9/hooks", "events": ["message.sent"]}


async def _api_webhook(s: Session) -> None:
    s.ids["api webhook"] = (await s.api_call("POST", "/api/v1/webhooks", 201, json=_WEBHOOK))["id"]


async def _api_put_webhook(s: Session) -> None:
    await s.api_call("PUT", f"/api/v1/webhooks/{s.ids['api webhook']}", 200, json={**_WEBHOOK, "enabled": False})


async def _api_rotate_webhook_secret(s: Session) -> None:
    await s.api_call("POST", f"/api/v1/webhooks/{s.ids['api webhook']}/rotate-secret", 201)


async def _api_delete_webhook(s: Session) -> None:
    await s.api_call("DELETE", f"/api/v1/webhooks/{s.ids['api webhook']}", 204)


_WEBHOOK_FORM = {"url": "http://127.0.0.1:9/console-hooks", "events": ["message.failed"]}


async def _console_webhook(s: Session) -> None:
    answer = await s.console.post("/admin/webhooks", _WEBHOOK_FORM)
    assert answer.status_code == 200, answer.text
    found = await s.api_call("GET", "/api/v1/webhooks", 200)
    s.ids["console webhook"] = next(w["id"] for w in found if w["url"] == _WEBHOOK_FORM["url"])


async def _console_update_webhook(s: Session) -> None:
    await s.form(f"/admin/webhooks/{s.ids['console webhook']}", {**_WEBHOOK_FORM, "enabled": "on"})


async def _console_rotate_webhook_secret(s: Session) -> None:
    answer = await s.console.post(f"/admin/webhooks/{s.ids['console webhook']}/rotate-secret")
    assert answer.status_code == 200, answer.text


async def _console_delete_webhook(s: Session) -> None:
    await s.form(f"/admin/webhooks/{s.ids['console webhook']}/delete")


async def _console_retry_mailing(s: Session) -> None:
    await s.form(f"/admin/mailings/{s.ids['console mailing']}/retry", {"statuses": ["failed", "expired"]})


async def _console_test_send(s: Session) -> None:
    # As the API's: no provider listens, the answer says so, and the attempt is recorded all the same.
    answer = await s.console.post(f"/admin/mailings/{s.ids['console mailing']}/test", {"phone": "79160000009"})
    assert answer.status_code == 200, answer.text
    assert "Not sent to 79160000009" in answer.text


async def _console_delete_mailing(s: Session) -> None:
    await s.form(f"/admin/mailings/{s.ids['console mailing']}/delete")


_PROVIDER_FORM = {"name": "console-spare", "kind": "http", "settings": '{"url": "http://127.0.0.1:9/v1"}'}


async def _console_provider(s: Session) -> None:
    await s.form("/admin/providers", {**_PROVIDER_FORM, "enabled": "on"})
    found = await s.api_call("GET", "/api/v1/providers", 200)
    s.ids["console provider"] = next(p["id"] for p in found if p["name"] == "console-spare")


async def _console_update_provider(s: Session) -> None:
    await s.form(f"/admin/providers/{s.ids['console provider']}", _PROVIDER_FORM)


async def _console_routes(s: Session) -> None:
    await s.form("/admin/providers/routes", {"routes": '[{"providers": ["console-spare"]}]'})


async def _console_sign_out(s: Session) -> None:
    await s.form("/admin/sign-out")


_SCHEDULE = {
    "name": "Daily",
    "text": "Deals",
    "rrule": "FREQ=DAILY;COUNT=7",
    "kind": "service",
    "starts": "2036-12-05T10:00",
    "timezone": "Europe/Moscow",
    "duration_minutes": 60,
}


async def _api_audience(s: Session) -> None:
    body = {"name": "VIP", "filter": {"tags": ["vip"]}}
    s.ids["api audience"] = (await s.api_call("POST", "/api/v1/audiences", 201, json=body))["id"]


async def _api_patch_audience(s: Session) -> None:
    await s.api_call("PATCH", f"/api/v1/audiences/{s.ids['api audience']}", 200, json={"name": "Gold"})


async def _api_put_audience(s: Session) -> None:
    await s.api_call("PUT", f"/api/v1/audiences/{s.ids['api audience']}", 200, json={"name": "VIP"})


async def _api_delete_audience(s: Session) -> None:
    await s.api_call("DELETE", f"/api/v1/audiences/{s.ids['api audience']}", 204)


async def _api_schedule(s: Session) -> None:
    s.ids["api schedule"] = (await s.api_call("POST", "/api/v1/schedules", 201, json=_SCHEDULE))["id"]


async def _api_patch_schedule(s: Session) -> None:
    await s.api_call("PATCH", f"/api/v1/schedules/{s.ids['api schedule']}", 200, json={"text": "More deals"})


async def _api_put_schedule(s: Session) -> None:
    await s.api_call("PUT", f"/api/v1/schedules/{s.ids['api schedule']}", 200, json=_SCHEDULE)


async def _api_pause_schedule(s: Session) -> None:
    await s.api_call("POST", f"/api/v1/schedules/{s.ids['api schedule']}/pause", 200)


async def _api_resume_schedule(s: Session) -> None:
    await s.api_call("POST", f"/api/v1/schedules/{s.ids['api schedule']}/resume", 200)


async def _api_delete_schedule(s: Session) -> None:
    await s.api_call("DELETE", f"/api/v1/schedules/{s.ids['api schedule']}", 204)


async def _api_name_code(s: Session) -> None:
    await s.api_call("PUT", "/api/v1/operator-codes/916", 200, json={"name": "MTS"})


async def _api_unname_code(s: Session) -> None:
    await s.api_call("DELETE", "/api/v1/operator-codes/916", 204)


async def _console_audience(s: Session) -> None:
    await s.form("/admin/audiences", {"name": "Console VIP", "tags": "vip"})
    found = await s.api_call("GET", "/api/v1/audiences", 200)
    s.ids["console audience"] = next(a["id"] for a in found["items"] if a["name"] == "Console VIP")


async def _console_update_audience(s: Session) -> None:
    await s.form(f"/admin/audiences/{s.ids['console audience']}", {"name": "Console gold", "tags": "gold"})


async def _console_delete_audience(s: Session) -> None:
    await s.form(f"/admin/audiences/{s.ids['console audience']}/delete")


async def _console_schedule(s: Session) -> None:
    form = {**_SCHEDULE, "duration_minutes": "60", "audience_id": ""}
    answer = await s.console.post("/admin/schedules", form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    s.ids["console schedule"] = int(answer.headers["location"].rsplit("/", 1)[1])


async def _console_update_schedule(s: Session) -> None:
    form = {**_SCHEDULE, "text": "Console deals", "duration_minutes": "30", "audience_id": ""}
    await s.form(f"/admin/schedules/{s.ids['console schedule']}", form)


async def _console_pause_schedule(s: Session) -> None:
    await s.form(f"/admin/schedules/{s.ids['console schedule']}/pause")


async def _console_resume_schedule(s: Session) -> None:
    await s.form(f"/admin/schedules/{s.ids['console schedule']}/resume")


async def _console_delete_schedule(s: Session) -> None:
    await s.form(f"/admin/schedules/{s.ids['console schedule']}/delete")


async def _console_name_code(s: Session) -> None:
    await s.form("/admin/operator-codes", {"code": "903", "name": "Beeline"})


# Each changing route, the request that exercises it and the row it must write (action, entity).
# A route added without an entry here fails the test below: add the request that exercises it.
async def _api_suppress(s: Session) -> None:
    await s.api_call("POST", "/api/v1/suppressions", 201, json={"phone": "79160000301", "reason": "complaint"})


async def _api_unsuppress(s: Session) -> None:
    await s.api_call("DELETE", "/api/v1/suppressions/79160000301", 204)


async def _api_import_suppressions(s: Session) -> None:
    body = b"phone,reason\n79160000302,stop_word\n"
    answer = await s.api.post(
        "/api/v1/suppressions/import",
        content=body,
        headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "text/csv"},
    )
    assert answer.status_code == 200, answer.text


async def _console_suppress(s: Session) -> None:
    await s.form("/admin/suppressions", {"phone": "79160000303", "reason": "operator_request", "source": ""})


async def _console_unsuppress(s: Session) -> None:
    await s.form("/admin/suppressions/79160000303/delete")


async def _console_import_suppressions(s: Session) -> None:
    answer = await s.console.client.post(
        "/admin/suppressions/import",
        data={"_csrf_token": s.console.csrf},
        files={"file": ("numbers.csv", b"phone\n79160000304\n", "text/csv")},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


EXERCISES: dict[tuple[str, str], tuple[Callable[[Session], Awaitable[None]], str, str]] = {
    ("POST", "/api/v1/clients"): (_api_client, "create", "client"),
    ("POST", "/api/v1/clients/bulk"): (_api_import, "import", "client"),
    ("PATCH", "/api/v1/clients/{client_id:int}"): (_api_patch_client, "update", "client"),
    ("PUT", "/api/v1/clients/{client_id:int}"): (_api_put_client, "update", "client"),
    ("DELETE", "/api/v1/clients/{client_id:int}"): (_api_delete_client, "delete", "client"),
    ("POST", "/api/v1/mailings"): (_api_mailing, "create", "mailing"),
    ("PATCH", "/api/v1/mailings/{mailing_id:int}"): (_api_patch_mailing, "update", "mailing"),
    ("PUT", "/api/v1/mailings/{mailing_id:int}"): (_api_put_mailing, "update", "mailing"),
    ("POST", "/api/v1/mailings/{mailing_id:int}/pause"): (_api_pause_mailing, "pause", "mailing"),
    ("POST", "/api/v1/mailings/{mailing_id:int}/resume"): (_api_resume_mailing, "resume", "mailing"),
    ("POST", "/api/v1/mailings/{mailing_id:int}/retry"): (_api_retry_mailing, "retry", "mailing"),
    ("POST", "/api/v1/mailings/{mailing_id:int}/test"): (_api_test_send, "test send", "mailing"),
    ("DELETE", "/api/v1/mailings/{mailing_id:int}"): (_api_delete_mailing, "delete", "mailing"),
    ("POST", "/api/v1/providers"): (_api_provider, "create", "provider"),
    ("PUT", "/api/v1/providers/{provider_id:int}"): (_api_put_provider, "update", "provider"),
    ("DELETE", "/api/v1/providers/{provider_id:int}"): (_api_delete_provider, "delete", "provider"),
    ("PUT", "/api/v1/routes"): (_api_routes, "update", "routes"),
    ("POST", "/api/v1/webhooks"): (_api_webhook, "create", "webhook"),
    ("PUT", "/api/v1/webhooks/{webhook_id:int}"): (_api_put_webhook, "update", "webhook"),
    ("POST", "/api/v1/webhooks/{webhook_id:int}/rotate-secret"): (
        _api_rotate_webhook_secret,
        "rotate secret",
        "webhook",
    ),
    ("DELETE", "/api/v1/webhooks/{webhook_id:int}"): (_api_delete_webhook, "delete", "webhook"),
    ("POST", "/admin/sign-in"): (_console_sign_in, "sign-in", "session"),
    ("POST", "/admin/clients"): (_console_client, "create", "client"),
    ("POST", "/admin/clients/{client_id:int}"): (_console_update_client, "update", "client"),
    ("POST", "/admin/clients/{client_id:int}/delete"): (_console_delete_client, "delete", "client"),
    ("POST", "/admin/clients/import"): (_console_import, "import", "client"),
    ("POST", "/admin/mailings"): (_console_mailing, "create", "mailing"),
    ("POST", "/admin/mailings/{mailing_id:int}"): (_console_update_mailing, "update", "mailing"),
    ("POST", "/admin/mailings/{mailing_id:int}/pause"): (_console_pause_mailing, "pause", "mailing"),
    ("POST", "/admin/mailings/{mailing_id:int}/resume"): (_console_resume_mailing, "resume", "mailing"),
    ("POST", "/admin/mailings/{mailing_id:int}/retry"): (_console_retry_mailing, "retry", "mailing"),
    ("POST", "/admin/mailings/{mailing_id:int}/test"): (_console_test_send, "test send", "mailing"),
    ("POST", "/admin/mailings/{mailing_id:int}/delete"): (_console_delete_mailing, "delete", "mailing"),
    ("POST", "/api/v1/audiences"): (_api_audience, "create", "audience"),
    ("PATCH", "/api/v1/audiences/{audience_id:int}"): (_api_patch_audience, "update", "audience"),
    ("PUT", "/api/v1/audiences/{audience_id:int}"): (_api_put_audience, "update", "audience"),
    ("DELETE", "/api/v1/audiences/{audience_id:int}"): (_api_delete_audience, "delete", "audience"),
    ("POST", "/api/v1/schedules"): (_api_schedule, "create", "schedule"),
    ("PATCH", "/api/v1/schedules/{schedule_id:int}"): (_api_patch_schedule, "update", "schedule"),
    ("PUT", "/api/v1/schedules/{schedule_id:int}"): (_api_put_schedule, "update", "schedule"),
    ("POST", "/api/v1/schedules/{schedule_id:int}/pause"): (_api_pause_schedule, "pause", "schedule"),
    ("POST", "/api/v1/schedules/{schedule_id:int}/resume"): (_api_resume_schedule, "resume", "schedule"),
    ("DELETE", "/api/v1/schedules/{schedule_id:int}"): (_api_delete_schedule, "delete", "schedule"),
    ("PUT", "/api/v1/operator-codes/{code:str}"): (_api_name_code, "create", "operator code"),
    ("DELETE", "/api/v1/operator-codes/{code:str}"): (_api_unname_code, "delete", "operator code"),
    ("POST", "/admin/audiences"): (_console_audience, "create", "audience"),
    ("POST", "/admin/audiences/{audience_id:int}"): (_console_update_audience, "update", "audience"),
    ("POST", "/admin/audiences/{audience_id:int}/delete"): (_console_delete_audience, "delete", "audience"),
    ("POST", "/admin/schedules"): (_console_schedule, "create", "schedule"),
    ("POST", "/admin/schedules/{schedule_id:int}"): (_console_update_schedule, "update", "schedule"),
    ("POST", "/admin/schedules/{schedule_id:int}/pause"): (_console_pause_schedule, "pause", "schedule"),
    ("POST", "/admin/schedules/{schedule_id:int}/resume"): (_console_resume_schedule, "resume", "schedule"),
    ("POST", "/admin/schedules/{schedule_id:int}/delete"): (_console_delete_schedule, "delete", "schedule"),
    ("POST", "/admin/operator-codes"): (_console_name_code, "create", "operator code"),
    ("POST", "/admin/providers"): (_console_provider, "create", "provider"),
    ("POST", "/admin/providers/{provider_id:int}"): (_console_update_provider, "update", "provider"),
    ("POST", "/admin/providers/routes"): (_console_routes, "update", "routes"),
    ("POST", "/admin/webhooks"): (_console_webhook, "create", "webhook"),
    ("POST", "/admin/webhooks/{webhook_id:int}"): (_console_update_webhook, "update", "webhook"),
    ("POST", "/admin/webhooks/{webhook_id:int}/rotate-secret"): (
        _console_rotate_webhook_secret,
        "rotate secret",
        "webhook",
    ),
    ("POST", "/admin/webhooks/{webhook_id:int}/delete"): (_console_delete_webhook, "delete", "webhook"),
    ("POST", "/api/v1/suppressions"): (_api_suppress, "create", "suppression"),
    ("DELETE", "/api/v1/suppressions/{phone:str}"): (_api_unsuppress, "delete", "suppression"),
    ("POST", "/api/v1/suppressions/import"): (_api_import_suppressions, "import", "suppression"),
    ("POST", "/admin/suppressions"): (_console_suppress, "create", "suppression"),
    ("POST", "/admin/suppressions/{phone:str}/delete"): (_console_unsuppress, "delete", "suppression"),
    ("POST", "/admin/suppressions/import"): (_console_import_suppressions, "import", "suppression"),
    ("POST", "/admin/sign-out"): (_console_sign_out, "sign-out", "session"),
}


# Routes that take a changing method but change nothing (a preview that only computes), each with
# why; they write no audit row.
CHANGES_NOTHING: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/mailings/preview"): "the audience of a mailing not created: counted, nothing written",
    ("POST", "/api/v1/schedules/preview"): "the next occurrences of a schedule not created: computed, nothing written",
    ("POST", "/admin/mailings/preview"): "the console's form of the same preview: nothing written",
    ("POST", "/admin/mailings/measure"): "the text's encoding and parts as it is typed: nothing written",
    # A provider's callbacks: what the SMS world reports, signed by the provider, not an operator's change.
    ("POST", "/api/v1/providers/{provider_name:str}/receipts"): "a provider's receipts: a message's delivery state",
    ("POST", "/api/v1/providers/{provider_name:str}/inbound"): "a phone's message, stored and listed",
}


async def test_every_changing_route_writes_an_audit_row(app: Litestar, anonymous: Console, db: AsyncSession) -> None:
    missing = changing_routes(app) - set(EXERCISES) - set(CHANGES_NOTHING)
    assert not missing, f"changing routes with no audit exercise (add one to EXERCISES): {sorted(missing)}"
    assert set(EXERCISES) <= changing_routes(app), "an exercise names a route that no longer exists"
    assert (await anonymous.sign_in()).status_code == 200
    session = Session(api=anonymous.client, console=anonymous)

    for (method, path), (exercise, action, entity) in EXERCISES.items():
        before = len(await audit_rows(db))
        await exercise(session)
        written = (await audit_rows(db))[before:]
        assert [(row["action"], row["entity"]) for row in written] == [(action, entity)], (method, path)
        assert written[0]["actor"] == TOKEN_ACTOR, (method, path)
        assert written[0]["via"] == ("api" if path.startswith("/api/") else "console"), (method, path)


def _row(actor: str, via: str, action: str, entity: str, entity_id: int | None, **changes: Any) -> dict[str, Any]:
    return {
        "actor": actor,
        "via": via,
        "action": action,
        "entity": entity,
        "entity_id": entity_id,
        "changes": {name: {"old": old, "new": new} for name, (old, new) in changes.items()},
    }


async def test_a_session_of_changes_is_recorded_one_for_one_with_its_actors(
    anonymous: Console, oidc: FakeOpenIDProvider, db: AsyncSession
) -> None:
    s = Session(api=anonymous.client, console=anonymous)
    first = await s.api_call(
        "POST", "/api/v1/clients", 201, json={"phone": "79161234567", "timezone": "Europe/Moscow", "tag": "vip"}
    )
    await s.api_call("POST", "/api/v1/clients", 409, json={"phone": "79161234567", "timezone": "UTC"})
    await s.api_call("PATCH", f"/api/v1/clients/{first['id']}", 200, json={"tag": "regular"})
    mailing = await s.api_call("POST", "/api/v1/mailings", 201, json=_mailing_body())

    oidc.script = Script(email=ADMIN)
    assert (await sign_in_through(anonymous)).status_code == 303
    anonymous.csrf = csrf_of((await anonymous.get("/admin")).text)
    await s.form("/admin/clients", {"phone": "79169876543", "timezone": "Asia/Tokyo", "tag": "", "operator_code": ""})
    second = next(c for c in (await s.api_call("GET", "/api/v1/clients", 200))["items"] if c["phone"] == "79169876543")
    start = dt.datetime.fromisoformat(mailing["start_at"])
    refused = await anonymous.post(
        f"/admin/mailings/{mailing['id']}",
        {"text": "Winter sale!", "start_at": local_input(start), "end_at": local_input(start - dt.timedelta(hours=1))},
    )
    assert refused.status_code == 400
    changed = {
        "text": "Winter sale!",
        "start_at": local_input(start),
        "end_at": local_input(start + dt.timedelta(hours=1)),
    }
    await s.form(f"/admin/mailings/{mailing['id']}", changed)
    await s.form(f"/admin/clients/{first['id']}/delete")
    await s.form("/admin/sign-out")
    await s.api_call("DELETE", f"/api/v1/mailings/{mailing['id']}", 204)

    mailing_fields = {
        "text": (None, "Winter sale"),
        "kind": (None, "service"),
        "start_at": (None, mailing["start_at"]),
        "end_at": (None, mailing["end_at"]),
        "filter": (None, {"operator_codes": [], "tags": [], "attributes": {}}),
    }
    assert await audit_rows(db) == [
        _row(
            TOKEN_ACTOR,
            "api",
            "create",
            "client",
            first["id"],
            phone=(None, "*******4567"),
            operator_code=(None, "916"),
            tag=(None, "vip"),
            timezone=(None, "Europe/Moscow"),
            attributes=(None, {}),
        ),
        _row(TOKEN_ACTOR, "api", "update", "client", first["id"], tag=("vip", "regular")),
        _row(TOKEN_ACTOR, "api", "create", "mailing", mailing["id"], **mailing_fields),
        _row(ADMIN, "console", "sign-in", "session", None, role=(None, "admin"), method=(None, "oidc")),
        _row(
            ADMIN,
            "console",
            "create",
            "client",
            second["id"],
            phone=(None, "*******6543"),
            operator_code=(None, "916"),
            tag=(None, ""),
            timezone=(None, "Asia/Tokyo"),
            attributes=(None, {}),
        ),
        _row(ADMIN, "console", "update", "mailing", mailing["id"], text=("Winter sale", "Winter sale!")),
        _row(
            ADMIN,
            "console",
            "delete",
            "client",
            first["id"],
            phone=("*******4567", None),
            operator_code=("916", None),
            tag=("regular", None),
            timezone=("Europe/Moscow", None),
            attributes=({}, None),
        ),
        _row(ADMIN, "console", "sign-out", "session", None, method=("oidc", None)),
        _row(
            TOKEN_ACTOR,
            "api",
            "delete",
            "mailing",
            mailing["id"],
            text=("Winter sale!", None),
            kind=("service", None),
            start_at=(mailing["start_at"], None),
            end_at=(mailing["end_at"], None),
            filter=({"operator_codes": [], "tags": [], "attributes": {}}, None),
        ),
    ]
    # No phone number is stored whole: the audit log is masked as the logs are.
    assert "79161234567" not in str(await audit_rows(db))


async def test_a_change_whose_audit_row_cannot_be_written_is_not_made(anonymous: Console, db: AsyncSession) -> None:
    s = Session(api=anonymous.client, console=anonymous)
    mailing = await s.api_call("POST", "/api/v1/mailings", 201, json=_mailing_body())
    # From now on the database refuses every audit row: each change must fail whole with it.
    await db.execute(
        text(
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'audit row refused'; END $$"
        )
    )
    await db.execute(text("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log EXECUTE FUNCTION refuse_audit()"))
    await db.commit()

    await s.api_call("POST", "/api/v1/clients", 500, json={"phone": "79160000001", "timezone": "UTC"})
    await s.api_call("POST", "/api/v1/mailings", 500, json=_mailing_body("Never"))
    await s.api_call("PATCH", f"/api/v1/mailings/{mailing['id']}", 500, json={"text": "Changed"})
    await s.api_call("DELETE", f"/api/v1/mailings/{mailing['id']}", 500)

    assert (await db.execute(text("SELECT count(*) FROM clients"))).scalar_one() == 0
    assert (await db.execute(text("SELECT id, text FROM mailings"))).all() == [(mailing["id"], "Winter sale")]
    await db.commit()


async def test_the_api_lists_the_log_newest_first_filtered_and_paged(anonymous: Console) -> None:
    s = Session(api=anonymous.client, console=anonymous)
    first = await s.api_call("POST", "/api/v1/clients", 201, json={"phone": "79161234567", "timezone": "UTC"})
    await s.api_call("PATCH", f"/api/v1/clients/{first['id']}", 200, json={"tag": "vip"})
    await s.api_call("POST", "/api/v1/mailings", 201, json=_mailing_body())

    everything = await s.api_call("GET", "/api/v1/audit", 200)
    by_client = await s.api_call("GET", "/api/v1/audit", 200, params={"entity": "client", "entity_id": first["id"]})
    second_page = await s.api_call("GET", "/api/v1/audit", 200, params={"limit": 1, "offset": 1})
    by_person = await s.api_call("GET", "/api/v1/audit", 200, params={"actor": "nobody@example.com"})

    assert [(e["action"], e["entity"]) for e in everything["items"]] == [
        ("create", "mailing"),
        ("update", "client"),
        ("create", "client"),
    ]
    assert everything["total"] == 3
    newest_client_change = everything["items"][1]
    assert newest_client_change["actor"] == TOKEN_ACTOR
    assert newest_client_change["via"] == "api"
    assert newest_client_change["changes"] == {"tag": {"old": "", "new": "vip"}}
    assert everything["items"][2]["changes"]["phone"] == {"old": None, "new": "*******4567"}
    assert [e["action"] for e in by_client["items"]] == ["update", "create"]
    assert second_page["items"] == [newest_client_change]
    assert second_page["total"] == 3
    assert by_person == {"items": [], "total": 0, "limit": 50, "offset": 0}
    refused = await anonymous.client.get("/api/v1/audit")
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    bad = await s.api_call("GET", "/api/v1/audit", 400, params={"entity": "planet"})
    assert [e["field"] for e in bad["errors"]] == ["entity"]


async def test_the_console_shows_the_log_to_viewers_filtered_and_paged(
    anonymous: Console, oidc: FakeOpenIDProvider
) -> None:
    s = Session(api=anonymous.client, console=anonymous)
    rows = [{"phone": f"791600{i:05d}", "timezone": "UTC"} for i in range(60)]
    created = await s.api_call("POST", "/api/v1/clients/bulk", 201, json=rows)
    for client in created[:55]:
        await s.api_call("PATCH", f"/api/v1/clients/{client['id']}", 200, json={"tag": "vip"})
    oidc.script = Script(email="reader@viewers.example.com")
    assert (await sign_in_through(anonymous)).status_code == 303

    first_page = (await anonymous.get("/admin/audit")).text
    older = (await anonymous.get("/admin/audit?page=2")).text
    one_client = (await anonymous.get(f"/admin/audit?entity=client&entity_id={created[3]['id']}")).text
    by_person = (await anonymous.get("/admin/audit", params={"actor": "reader@viewers.example.com"})).text
    bad = await anonymous.get("/admin/audit?entity_id=x7")

    # Newest first: the viewer's own sign-in, then the tag changes.
    assert first_page.count('data-audit-id="') == 50
    assert "page 1 of 2 · 57 entries" in first_page
    assert first_page.index('data-action="sign-in"') < first_page.index('data-action="update"')
    assert "<code>tag</code>: (empty) → vip" in first_page
    assert older.count('data-audit-id="') == 7
    assert 'data-action="import"' in older
    assert "<code>count</code>: 60" in older
    assert one_client.count('data-audit-id="') == 1
    assert 'data-action="update"' in one_client
    assert by_person.count('data-audit-id="') == 1
    assert bad.status_code == 400
    assert 'id="error-entity_id">an id is a whole number from 1<' in bad.text


async def test_an_idempotent_replay_and_a_preview_write_no_audit_row(client: Api, db: AsyncSession) -> None:
    now = dt.datetime.now(dt.UTC)
    body = {
        "text": "Once",
        "kind": "service",
        "start_at": now.isoformat(),
        "end_at": (now + dt.timedelta(hours=1)).isoformat(),
    }
    key = {"Idempotency-Key": "audit-once"}
    created = await client.post("/api/v1/mailings", json=body, headers=key)
    assert created.status_code == 201, created.text

    replayed = await client.post("/api/v1/mailings", json=body, headers=key)
    previewed = await client.post("/api/v1/mailings/preview", json=body)
    previewed_existing = await client.get(f"/api/v1/mailings/{created.json()['id']}/preview")

    assert replayed.headers["idempotent-replayed"] == "true"
    assert previewed.status_code == previewed_existing.status_code == 200
    logged = (await db.execute(text("SELECT action, entity, entity_id FROM audit_log ORDER BY id"))).all()
    await db.rollback()
    assert [tuple(row) for row in logged] == [("create", "mailing", created.json()["id"])]
