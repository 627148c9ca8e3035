"""The account, its sub-accounts and its API keys, through the real app.

Every write must leave an audit event naming the acting key and the changed field
names (never their values); every refused request must change nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import Tenant, make_tenant
from tidings.accounts.auth import Authenticator
from tidings.accounts.models import Account, AccountStatus, ApiKey
from tidings.audit.models import AuditEvent
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.users.sessions import SessionPolicy

PROBLEM = "application/problem+json"


async def audit_events(rt: Runtime, tenant: str) -> list[AuditEvent]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = await session.scalars(select(AuditEvent).where(AuditEvent.tenant_id == tenant)
                                     .order_by(AuditEvent.id))
        return list(rows.all())


async def count_rows(rt: Runtime, model: Any) -> int:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def audit_text(event: AuditEvent) -> str:
    """Every stored column of an audit event, as one string to search for leaked values."""
    return " ".join(str(getattr(event, c.key)) for c in AuditEvent.__table__.columns)


def assert_problem(response: httpx.Response, status: int, code: str | set[str]) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    codes = {code} if isinstance(code, str) else code
    assert body["code"] in codes, body
    assert body["status"] == status


def parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


async def snapshot(client: httpx.AsyncClient, rt: Runtime, tenant: Tenant) -> dict[str, Any]:
    """What a refused request must leave exactly as it was."""
    return {
        "account": (await client.get("/v1/account", headers=tenant.headers)).json(),
        "keys": (await client.get("/v1/keys", headers=tenant.headers)).json(),
        "subs": (await client.get("/v1/accounts", headers=tenant.headers)).json(),
        "accounts": await count_rows(rt, Account),
        "audit": await count_rows(rt, AuditEvent),
    }


# -- the account ---------------------------------------------------------------------------


async def test_read_account(client: httpx.AsyncClient, acme: Tenant, clock: FakeClock) -> None:
    response = await client.get("/v1/account", headers=acme.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == acme.id
    assert (body["name"], body["status"], body["parent_id"], body["webhook_url"]) == (
        "Acme", "active", None, None)
    assert parse_time(body["created_at"]) == clock.now()


async def test_patch_name_and_webhook_url_then_clear_it(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    before = len(await audit_events(rt, acme.id))
    clock.advance(60)
    response = await client.patch("/v1/account", headers=acme.headers, json={
        "name": "Acme Rockets", "webhook_url": "https://hooks.acme.test/tidings"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["webhook_url"]) == ("Acme Rockets",
                                                   "https://hooks.acme.test/tidings")
    assert parse_time(body["updated_at"]) == clock.now()
    assert (await client.get("/v1/account", headers=acme.headers)).json() == body

    clock.advance(60)
    cleared = await client.patch("/v1/account", headers=acme.headers,
                                 json={"webhook_url": None})
    assert cleared.status_code == 200, cleared.text
    read = (await client.get("/v1/account", headers=acme.headers)).json()
    assert (read["name"], read["webhook_url"]) == ("Acme Rockets", None)
    assert parse_time(read["updated_at"]) == clock.now()

    events = (await audit_events(rt, acme.id))[before:]
    assert [(e.action, e.table_name, e.row_id, e.fields) for e in events] == [
        ("update", "accounts", acme.id, ["name", "webhook_url"]),
        ("update", "accounts", acme.id, ["webhook_url"]),
    ]
    for event in events:
        assert (event.actor_type, event.actor_id) == ("api_key", acme.made.api_key_id)
        assert "Rockets" not in audit_text(event)
        assert "hooks.acme.test" not in audit_text(event)


async def test_patch_webhook_statuses_then_back_to_every_change(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    assert (await client.get("/v1/account", headers=acme.headers)).json()[
        "webhook_statuses"] is None
    before = len(await audit_events(rt, acme.id))
    response = await client.patch("/v1/account", headers=acme.headers,
                                  json={"webhook_statuses": ["final", "sent"]})
    assert response.status_code == 200, response.text
    assert response.json()["webhook_statuses"] == [
        "canceled", "delivered", "expired", "failed", "not_accepted", "rejected", "sent",
        "undelivered"]
    again = await client.patch("/v1/account", headers=acme.headers,
                               json={"webhook_statuses": ["sent", "final"]})  # the same
    assert again.json() == response.json()
    cleared = await client.patch("/v1/account", headers=acme.headers,
                                 json={"webhook_statuses": None})
    assert cleared.json()["webhook_statuses"] is None
    events = (await audit_events(rt, acme.id))[before:]
    assert [e.fields for e in events] == [["webhook_statuses"], ["webhook_statuses"]]


async def test_patch_that_changes_nothing_records_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    before = await snapshot(client, rt, acme)
    for body in ({}, {"name": "Acme"}, {"webhook_url": None, "name": "  Acme  "}):
        response = await client.patch("/v1/account", headers=acme.headers, json=body)
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "Acme"
    assert await snapshot(client, rt, acme) == before


@pytest.mark.parametrize(("body", "code"), [
    ({"nickname": "Acme"}, "validation_failed"),
    ({"name": ""}, "validation_failed"),
    ({"name": "   "}, "invalid_name"),
    ({"name": "x" * 201}, "validation_failed"),
    ({"webhook_url": "ftp://hooks.acme.test/x"}, "validation_failed"),
    ({"webhook_url": "not a url"}, "validation_failed"),
    ({"webhook_url": "https://hooks acme.test/x"}, "validation_failed"),
    ({"webhook_url": "https://" + "a" * 2050}, "validation_failed"),
    ({"name": "Renamed", "webhook_url": "javascript:alert(1)"}, "validation_failed"),
    ({"webhook_url": 42}, "validation_failed"),
    ({"name": "Renamed", "webhook_statuses": ["delivered", "arrived"]},
     "invalid_webhook_statuses"),
    ({"webhook_statuses": []}, "invalid_webhook_statuses"),
    ({"webhook_statuses": ["received"]}, "invalid_webhook_statuses"),
    ({"webhook_statuses": "final"}, "validation_failed"),
    ({"webhook_statuses": [1]}, "validation_failed"),
    ({"webhook_statuses": ["final"] * 21}, "validation_failed"),
    (b"{not json", "malformed_json"),
    ([], "validation_failed"),
])
async def test_patch_bad_input_changes_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, body: Any, code: str) -> None:
    await client.patch("/v1/account", headers=acme.headers,
                       json={"webhook_url": "https://hooks.acme.test/ok"})
    before = await snapshot(client, rt, acme)
    if isinstance(body, bytes):
        response = await client.patch("/v1/account", content=body, headers={
            **acme.headers, "Content-Type": "application/json"})
    else:
        response = await client.patch("/v1/account", headers=acme.headers, json=body)
    assert_problem(response, 400, code)
    assert await snapshot(client, rt, acme) == before


async def test_webhook_secret_is_the_provisioned_one(
        client: httpx.AsyncClient, acme: Tenant, globex: Tenant) -> None:
    for tenant in (acme, globex):
        response = await client.get("/v1/account/webhook-secret", headers=tenant.headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"webhook_secret": tenant.made.webhook_secret}
    assert acme.made.webhook_secret.startswith("whsec_")
    assert acme.made.webhook_secret != globex.made.webhook_secret


@pytest.mark.parametrize(("authorization", "code"), [
    (None, "missing_api_key"),
    ("Basic dXNlcjpwYXNz", "missing_api_key"),
    ("Bearer ", "missing_api_key"),
    ("Bearer not-a-key", "invalid_api_key"),
    ("Bearer tdk_000000000000_doesnotexist", "invalid_api_key"),
])
async def test_account_endpoints_need_a_valid_key(
        client: httpx.AsyncClient, acme: Tenant, authorization: str | None, code: str) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in (("GET", "/v1/account"), ("PATCH", "/v1/account"),
                         ("GET", "/v1/account/webhook-secret"), ("GET", "/v1/accounts"),
                         ("POST", "/v1/accounts"), ("GET", "/v1/keys"), ("POST", "/v1/keys"),
                         ("DELETE", f"/v1/keys/{acme.made.api_key_id}")):
        body = {"name": "x"} if method in ("POST", "PATCH") else None
        response = await client.request(method, path, headers=headers, json=body)
        assert_problem(response, 401, code)


async def test_a_key_with_a_forged_secret_is_refused(
        client: httpx.AsyncClient, acme: Tenant) -> None:
    prefix = acme.made.api_key.split("_")[1]
    forged = f"tdk_{prefix}_{'A' * 43}"
    response = await client.get("/v1/account", headers={"Authorization": f"Bearer {forged}"})
    assert_problem(response, 401, "invalid_api_key")


# -- sub-accounts -----------------------------------------------------------------------------


async def test_create_sub_account_with_its_own_key_and_secret(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    response = await client.post("/v1/accounts", headers=acme.headers, json={
        "name": "Acme Europe", "webhook_url": "https://eu.acme.test/hook"})
    assert response.status_code == 201, response.text
    sub = response.json()
    assert sub["parent_id"] == acme.id
    assert (sub["name"], sub["status"], sub["webhook_url"]) == (
        "Acme Europe", "active", "https://eu.acme.test/hook")
    assert sub["id"] != acme.id
    assert sub["api_key"].startswith("tdk_")
    assert sub["api_key"] != acme.made.api_key
    assert sub["webhook_secret"].startswith("whsec_")
    assert sub["webhook_secret"] != acme.made.webhook_secret

    own = {"Authorization": f"Bearer {sub['api_key']}"}
    read = (await client.get("/v1/account", headers=own)).json()
    assert (read["id"], read["parent_id"]) == (sub["id"], acme.id)
    secret = (await client.get("/v1/account/webhook-secret", headers=own)).json()
    assert secret == {"webhook_secret": sub["webhook_secret"]}
    keys = (await client.get("/v1/keys", headers=own)).json()
    assert [k["id"] for k in keys] == [sub["api_key_id"]]
    # The parent's own account is untouched and the parent's key list did not grow.
    assert (await client.get("/v1/account", headers=acme.headers)).json()["id"] == acme.id
    assert len((await client.get("/v1/keys", headers=acme.headers)).json()) == 1

    events = await audit_events(rt, sub["id"])
    assert [(e.action, e.table_name, e.row_id, e.fields) for e in events] == [
        ("create", "accounts", sub["id"], ["name", "status", "webhook_statuses", "webhook_url"]),
        ("create", "api_keys", sub["api_key_id"], ["created_by", "name"]),
    ]
    for event in events:
        assert (event.actor_type, event.actor_id) == ("api_key", acme.made.api_key_id)
        assert "Europe" not in audit_text(event)
        assert "eu.acme.test" not in audit_text(event)


async def test_a_trial_account_cannot_create_sub_accounts(
        client: httpx.AsyncClient, rt: Runtime) -> None:
    # Each would bring a free allowance of its own: a trial's allowance is one.
    trial = await make_tenant(rt, "Trialist", status=AccountStatus.TRIAL)
    response = await client.post("/v1/accounts", headers=trial.headers, json={"name": "Sub"})
    assert_problem(response, 403, "account_trial")
    assert (await client.get("/v1/accounts", headers=trial.headers)).json() == []


async def test_list_sub_accounts_shows_direct_children_only(
        client: httpx.AsyncClient, acme: Tenant, globex: Tenant) -> None:
    async def create(headers: dict[str, str], name: str) -> dict[str, Any]:
        response = await client.post("/v1/accounts", headers=headers, json={"name": name})
        assert response.status_code == 201, response.text
        return dict(response.json())

    child1 = await create(acme.headers, "Child 1")
    child2 = await create(acme.headers, "Child 2")
    grandchild = await create({"Authorization": f"Bearer {child1['api_key']}"}, "Grandchild")
    other = await create(globex.headers, "Globex child")

    def ids(response: httpx.Response) -> set[str]:
        assert response.status_code == 200, response.text
        return {a["id"] for a in response.json()}

    assert ids(await client.get("/v1/accounts", headers=acme.headers)) == {
        child1["id"], child2["id"]}
    assert ids(await client.get("/v1/accounts", headers={
        "Authorization": f"Bearer {child1['api_key']}"})) == {grandchild["id"]}
    assert ids(await client.get("/v1/accounts", headers={
        **acme.headers, "Tidings-Account": child1["id"]})) == {grandchild["id"]}
    assert ids(await client.get("/v1/accounts", headers={
        "Authorization": f"Bearer {grandchild['api_key']}"})) == set()
    assert ids(await client.get("/v1/accounts", headers=globex.headers)) == {other["id"]}
    listed = (await client.get("/v1/accounts", headers=acme.headers)).json()
    assert all("api_key" not in a and "webhook_secret" not in a for a in listed)


@pytest.mark.parametrize(("body", "code"), [
    ({"name": "Sub", "plan": "gold"}, "validation_failed"),
    ({}, "validation_failed"),
    ({"name": ""}, "validation_failed"),
    ({"name": "   "}, "invalid_name"),
    ({"name": None}, "validation_failed"),
    ({"name": "x" * 201}, "validation_failed"),
    ({"name": "Sub", "webhook_url": "mailto:ops@acme.test"}, "validation_failed"),
    ({"name": "Sub", "webhook_statuses": ["delivered", "lost"]}, "invalid_webhook_statuses"),
    ({"name": "Sub", "webhook_url": "https://"}, "validation_failed"),
    ({"name": "Sub", "parent_id": "acc_someoneelse"}, "validation_failed"),
])
async def test_create_sub_account_bad_input_changes_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, body: dict[str, Any],
        code: str) -> None:
    before = await snapshot(client, rt, acme)
    response = await client.post("/v1/accounts", headers=acme.headers, json=body)
    assert_problem(response, 400, code)
    assert await snapshot(client, rt, acme) == before


@pytest.mark.parametrize("status", [AccountStatus.SUSPENDED,
                                    AccountStatus.PENDING_VERIFICATION])
async def test_an_account_that_cannot_send_cannot_create_sub_accounts(
        client: httpx.AsyncClient, rt: Runtime, status: AccountStatus) -> None:
    tenant = await make_tenant(rt, "Held", status=status)
    before = await snapshot(client, rt, tenant)
    response = await client.post("/v1/accounts", headers=tenant.headers, json={"name": "Sub"})
    assert_problem(response, 403, f"account_{status.value}")
    assert await snapshot(client, rt, tenant) == before


# -- API keys -------------------------------------------------------------------------------


async def test_create_key_shows_it_once(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    before = len(await audit_events(rt, acme.id))
    response = await client.post("/v1/keys", headers=acme.headers,
                                 json={"name": "deploy-bot-7"})
    assert response.status_code == 201, response.text
    made = response.json()
    secret = made["key"]
    assert secret.startswith(f"tdk_{made['prefix']}_")
    assert made["name"] == "deploy-bot-7"
    assert (made["revoked_at"], made["last_used_at"]) == (None, None)
    assert parse_time(made["created_at"]) == clock.now()

    listing = await client.get("/v1/keys", headers=acme.headers)
    assert listing.status_code == 200
    assert [k["id"] for k in listing.json()] == [acme.made.api_key_id, made["id"]]
    assert all("key" not in k for k in listing.json())
    assert secret not in listing.text
    assert secret.split("_")[2] not in listing.text
    # Only a hash is kept.
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        stored = await session.get(ApiKey, made["id"])
    assert stored is not None
    assert secret not in str(vars(stored))

    used = await client.get("/v1/account", headers={"Authorization": f"Bearer {secret}"})
    assert used.status_code == 200
    assert used.json()["id"] == acme.id

    events = (await audit_events(rt, acme.id))[before:]
    assert [(e.action, e.table_name, e.row_id, e.fields) for e in events] == [
        ("create", "api_keys", made["id"],
         ["allowed_ips", "created_by", "expires_at", "name", "scopes"])]
    assert (events[0].actor_type, events[0].actor_id) == ("api_key", acme.made.api_key_id)
    assert "deploy-bot-7" not in audit_text(events[0])


async def test_create_key_without_a_name_is_called_default(
        client: httpx.AsyncClient, acme: Tenant) -> None:
    response = await client.post("/v1/keys", headers=acme.headers, json={})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "default"


@pytest.mark.parametrize(("body", "code"), [
    ({"name": ""}, "validation_failed"), ({"name": "x" * 201}, "validation_failed"),
    ({"name": 7}, "validation_failed"), ({"key": "tdk_chosen_bymyself"}, "validation_failed"),
    ({"name": "ci", "scopes": ["all"]}, "unknown_scope"),
    ({"name": "ci", "scopes": "messages:send"}, "validation_failed"),
    ({"name": "ci", "scopes": ["messages:send", "Messages:Read"]}, "unknown_scope"),
    ({"name": "ci", "allowed_ips": ["10.0.0.0/33"]}, "invalid_cidr"),
    ({"name": "ci", "allowed_ips": ["example.com"]}, "invalid_cidr"),
    ({"name": "ci", "allowed_ips": ["10.0.0.1"] * 51}, "validation_failed"),
    ({"name": "ci", "expires_at": "2000-01-01T00:00:00Z"}, "invalid_expiry"),
    ({"name": "ci", "expires_at": "2030-01-01T00:00:00"}, "validation_failed"),  # no zone
    ({"name": "ci", "expires_at": "soon"}, "validation_failed"),
])
async def test_create_key_bad_input_changes_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, body: dict[str, Any],
        code: str) -> None:
    before = await snapshot(client, rt, acme)
    response = await client.post("/v1/keys", headers=acme.headers, json=body)
    assert_problem(response, 400, code)
    assert await snapshot(client, rt, acme) == before


async def test_revoked_key_is_refused_at_once(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    # A long cache, so "at once" is not just the test settings' zero cache at work.
    rt.auth = Authenticator(rt.db, rt.clock, cache_seconds=3600,
                            sessions=SessionPolicy.of(rt.settings))
    made = (await client.post("/v1/keys", headers=acme.headers, json={"name": "temp"})).json()
    doomed = {"Authorization": f"Bearer {made['key']}"}
    assert (await client.get("/v1/account", headers=doomed)).status_code == 200
    before = len(await audit_events(rt, acme.id))

    clock.advance(30)
    response = await client.delete(f"/v1/keys/{made['id']}", headers=acme.headers)
    assert response.status_code == 200, response.text
    assert parse_time(response.json()["revoked_at"]) == clock.now()

    for method, path in (("GET", "/v1/account"), ("GET", "/v1/keys"),
                         ("POST", "/v1/keys")):
        refused = await client.request(method, path, headers=doomed,
                                       json={} if method == "POST" else None)
        assert_problem(refused, 401, "api_key_revoked")
    assert (await client.get("/v1/account", headers=acme.headers)).status_code == 200
    listed = {k["id"]: k for k in (await client.get("/v1/keys", headers=acme.headers)).json()}
    assert parse_time(listed[made["id"]]["revoked_at"]) == clock.now()
    assert listed[acme.made.api_key_id]["revoked_at"] is None

    events = (await audit_events(rt, acme.id))[before:]
    assert [(e.action, e.table_name, e.row_id, e.fields, e.actor_type, e.actor_id)
            for e in events] == [("update", "api_keys", made["id"], ["revoked_at"],
                                  "api_key", acme.made.api_key_id)]

    # Revoking again is harmless: same answer, no second event, time unchanged.
    clock.advance(30)
    again = await client.delete(f"/v1/keys/{made['id']}", headers=acme.headers)
    assert again.status_code == 200
    assert again.json()["revoked_at"] == response.json()["revoked_at"]
    assert len(await audit_events(rt, acme.id)) == before + 1


async def test_a_key_may_revoke_itself(client: httpx.AsyncClient, acme: Tenant) -> None:
    response = await client.delete(f"/v1/keys/{acme.made.api_key_id}", headers=acme.headers)
    assert response.status_code == 200, response.text
    assert_problem(await client.get("/v1/account", headers=acme.headers), 401,
                   "api_key_revoked")


async def test_last_used_at_is_set_after_use(
        client: httpx.AsyncClient, clock: FakeClock, acme: Tenant) -> None:
    made = (await client.post("/v1/keys", headers=acme.headers, json={"name": "ci"})).json()

    def last_used(keys: list[dict[str, Any]], key_id: str) -> datetime | None:
        return parse_time(next(k for k in keys if k["id"] == key_id)["last_used_at"])

    listed = (await client.get("/v1/keys", headers=acme.headers)).json()
    assert last_used(listed, made["id"]) is None
    first_use = clock.now()
    assert last_used(listed, acme.made.api_key_id) == first_use

    clock.advance(3600)
    response = await client.get("/v1/account",
                                headers={"Authorization": f"Bearer {made['key']}"})
    assert response.status_code == 200
    listed = (await client.get("/v1/keys", headers=acme.headers)).json()
    assert last_used(listed, made["id"]) == clock.now()
    assert last_used(listed, acme.made.api_key_id) == clock.now()
    assert first_use < clock.now()


async def test_revoking_another_tenants_key_is_not_found(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    before_acme = await snapshot(client, rt, acme)
    before_globex = await snapshot(client, rt, globex)
    for key_id in (globex.made.api_key_id, "key_01doesnotexist0000000000000",
                   globex.made.api_key_id + "x" * 50):
        response = await client.delete(f"/v1/keys/{key_id}", headers=acme.headers)
        assert_problem(response, 404, "api_key_not_found")
    assert await snapshot(client, rt, acme) == before_acme
    assert await snapshot(client, rt, globex) == before_globex
    assert (await client.get("/v1/account", headers=globex.headers)).status_code == 200


async def test_parent_revokes_a_sub_account_key_only_when_acting_as_it(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    sub = await make_tenant(rt, "Acme Sub", parent=acme.id)
    plain = await client.delete(f"/v1/keys/{sub.made.api_key_id}", headers=acme.headers)
    assert_problem(plain, 404, "api_key_not_found")
    assert (await client.get("/v1/account", headers=sub.headers)).status_code == 200

    acting = await client.delete(f"/v1/keys/{sub.made.api_key_id}",
                                 headers={**acme.headers, "Tidings-Account": sub.id})
    assert acting.status_code == 200, acting.text
    assert_problem(await client.get("/v1/account", headers=sub.headers), 401,
                   "api_key_revoked")
    events = await audit_events(rt, sub.id)
    assert (events[-1].actor_type, events[-1].actor_id, events[-1].fields) == (
        "api_key", acme.made.api_key_id, ["revoked_at"])


@pytest.mark.parametrize("key", [
    "tdk_abc\x00def_secret", "tdk_abcdef_sec\x00ret", "tdk_ab\x7fc_x", "tdk_ABCDEF_secret",
    "tdk_abcdef_sec_ret", "tdk_abcdef_" + "s" * 161])
async def test_a_key_that_cannot_be_one_is_refused_before_any_query(
        client: httpx.AsyncClient, acme: Tenant, key: str) -> None:
    for method, path in (("GET", "/v1/account"), ("POST", "/v1/messages")):
        response = await client.request(method, path, headers={"Authorization": f"Bearer {key}"},
                                        json={"to": "+12025550173", "from": "Acme", "body": "x"})
        assert_problem(response, 401, "invalid_api_key")


@pytest.mark.parametrize("account", ["acc_\x00", "acc_" + "0" * 25 + "\x00", "ACC_x", "acc_"])
async def test_an_account_header_that_cannot_be_an_id_is_not_found(
        client: httpx.AsyncClient, acme: Tenant, account: str) -> None:
    for method, path in (("GET", "/v1/account"), ("POST", "/v1/messages")):
        response = await client.request(
            method, path, headers={**acme.headers, "Tidings-Account": account},
            json={"to": "+12025550173", "from": "Acme", "body": "x"})
        assert_problem(response, 404, "account_not_found")
