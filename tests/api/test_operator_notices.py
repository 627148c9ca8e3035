"""POST /v1/operator/notices: a maintenance notice to the owners of one account or of
every active and trial account, queued in one transaction; garbage refused with a clear
problem and nothing queued; operator keys only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.api.test_operator_api import ops  # noqa: F401 (a fixture)
from tests.conftest import TEST_ACTOR, Tenant, assert_problem, make_tenant
from tidings.accounts.models import AccountStatus
from tidings.audit.models import AuditEvent
from tidings.jobs.outbox import Job
from tidings.mail.mailbox import Mailbox, mailbox_path
from tidings.mail.service import MAIL_JOB
from tidings.operators.models import OperatorKey
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.users.service import create_user

NOTICE = {"subject": "Maintenance on Sunday", "body": "Down from 02:00 to 03:00 UTC."}


async def owner(rt: Runtime, tenant: str, email: str, role: str = "owner") -> str:
    return (await create_user(rt, account_id=tenant, email=email, role=role,
                              actor=TEST_ACTOR)).id


async def queued(rt: Runtime) -> int:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(Job).where(
            Job.kind == MAIL_JOB)) or 0)


async def test_a_notice_to_all_goes_to_each_owner_of_every_active_and_trial_account(
        rt: Runtime, client: httpx.AsyncClient, ops: dict[str, str],  # noqa: F811
        acme: Tenant, globex: Tenant) -> None:
    trial = await make_tenant(rt, "Trial Co", status=AccountStatus.TRIAL)
    suspended = await make_tenant(rt, "Gone Co", status=AccountStatus.SUSPENDED)
    await owner(rt, acme.id, "ann@acme.example")
    await owner(rt, acme.id, "bob@acme.example")
    await owner(rt, acme.id, "dev@acme.example", role="developer")  # not an owner
    await owner(rt, trial.id, "tia@trial.example")
    await owner(rt, suspended.id, "sue@gone.example")  # globex has no owner at all
    answer = await client.post("/v1/operator/notices", headers=ops,
                               json={**NOTICE, "all": True})
    assert answer.status_code == 202, answer.text
    assert (answer.json()["queued"], answer.json()["accounts"]) == (3, 2)
    assert await rt.worker_pool().drain() == 3
    kept = Mailbox(mailbox_path(rt.settings.data_dir)).read(await rt.vault.platform_keys())
    assert sorted(m.to for m in kept) == ["ann@acme.example", "bob@acme.example",
                                          "tia@trial.example"]
    assert {(m.kind, m.subject, m.body) for m in kept} == {
        ("maintenance", NOTICE["subject"], NOTICE["body"])}
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        events = (await session.scalars(select(AuditEvent).where(
            AuditEvent.action == "notice.send"))).all()
    assert sorted(e.row_id for e in events) == sorted(answer.json()["mail_ids"])
    assert {(e.actor_type, e.table_name) for e in events} == {("operator", "platform_mail")}
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        operator_id = await session.scalar(select(OperatorKey.id))
    assert {e.actor_id for e in events} == {operator_id}


async def test_a_notice_to_one_account_goes_to_its_owners_only(
        rt: Runtime, client: httpx.AsyncClient, ops: dict[str, str],  # noqa: F811
        acme: Tenant, globex: Tenant) -> None:
    await owner(rt, acme.id, "ann@acme.example")
    await owner(rt, globex.id, "gus@globex.example")
    answer = await client.post("/v1/operator/notices", headers=ops,
                               json={**NOTICE, "account_id": globex.id})
    assert answer.status_code == 202, answer.text
    assert (answer.json()["queued"], answer.json()["accounts"]) == (1, 1)
    await rt.worker_pool().drain()
    [kept] = Mailbox(mailbox_path(rt.settings.data_dir)).read(await rt.vault.platform_keys())
    assert (kept.to, kept.account_id) == ("gus@globex.example", globex.id)


async def test_sub_accounts_get_notices_unless_an_account_above_them_is_held_back(
        rt: Runtime, client: httpx.AsyncClient, ops: dict[str, str],  # noqa: F811
        acme: Tenant) -> None:
    suspended = await make_tenant(rt, "Gone Co", status=AccountStatus.SUSPENDED)
    held = await make_tenant(rt, "Gone EU", parent=suspended.id)  # active itself
    reseller_client = await make_tenant(rt, "Acme EU", parent=acme.id)
    await owner(rt, held.id, "hal@gone.example")
    await owner(rt, reseller_client.id, "eve@acme.example")
    answer = await client.post("/v1/operator/notices", headers=ops,
                               json={**NOTICE, "all": True})
    assert (answer.json()["queued"], answer.json()["accounts"]) == (1, 1)
    await rt.worker_pool().drain()
    [kept] = Mailbox(mailbox_path(rt.settings.data_dir)).read(await rt.vault.platform_keys())
    assert (kept.to, kept.account_id) == ("eve@acme.example", reseller_client.id)
    refused = await client.post("/v1/operator/notices", headers=ops,
                                json={**NOTICE, "account_id": held.id})
    assert_problem(refused, 409, "account_not_active")
    assert "held back" in refused.json()["detail"]


@pytest.mark.parametrize(("body", "status", "code"), [
    ({**NOTICE}, 400, "invalid_notice_audience"),
    ({**NOTICE, "all": True, "account_id": "ACME"}, 400, "invalid_notice_audience"),
    ({**NOTICE, "all": True, "subject": ""}, 400, "invalid_subject"),
    ({**NOTICE, "all": True, "subject": "Down\nBcc: all@example.com"}, 400, "invalid_subject"),
    ({**NOTICE, "all": True, "body": "   "}, 400, "invalid_body"),
    ({**NOTICE, "all": True, "body": "x" * 20_001}, 400, "invalid_body"),
    ({**NOTICE, "account_id": "acc_nope"}, 404, "account_not_found"),
    ({**NOTICE, "account_id": "SUSPENDED"}, 409, "account_not_active"),
    ({**NOTICE, "account_id": "NO_OWNER"}, 409, "account_has_no_owner"),
    ({"subject": "Hi", "all": True}, 400, "validation_failed"),
    ({**NOTICE, "all": "yes please"}, 400, "validation_failed"),
    ({**NOTICE, "all": True, "cc": "x@example.com"}, 400, "validation_failed"),
])
async def test_garbage_is_refused_and_nothing_is_queued(
        rt: Runtime, client: httpx.AsyncClient, ops: dict[str, str],  # noqa: F811
        acme: Tenant, body: dict[str, Any], status: int, code: str) -> None:
    await owner(rt, acme.id, "ann@acme.example")
    suspended = await make_tenant(rt, "Gone Co", status=AccountStatus.SUSPENDED)
    await owner(rt, suspended.id, "sue@gone.example")
    no_owner = await make_tenant(rt, "Nobody Co")
    names = {"ACME": acme.id, "SUSPENDED": suspended.id, "NO_OWNER": no_owner.id}
    if body.get("account_id") in names:
        body = {**body, "account_id": names[body["account_id"]]}
    answer = await client.post("/v1/operator/notices", headers=ops, json=body)
    assert_problem(answer, status, code)
    assert await queued(rt) == 0
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        assert await session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "notice.send")) == 0


async def test_a_clients_key_cannot_send_notices(rt: Runtime, client: httpx.AsyncClient,
                                                 acme: Tenant) -> None:
    await owner(rt, acme.id, "ann@acme.example")
    answer = await client.post("/v1/operator/notices", headers=acme.headers,
                               json={**NOTICE, "all": True})
    assert_problem(answer, 401, "invalid_operator_key")
    assert await queued(rt) == 0
