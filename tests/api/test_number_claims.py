"""Claiming a number takes a one-time code sent to it; the operator assigns without one.

A claim never reveals who holds a number: a claim of another account's number looks
like a claim of a free one, up to the code that never comes.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import Tenant, assert_problem, codes_sent, own_number, settle
from tidings.audit.models import AuditEvent
from tidings.core.clock import FakeClock
from tidings.messaging.models import Message
from tidings.numbers.claims import CODE_TTL, MAX_ATTEMPTS
from tidings.numbers.codes import PLATFORM_ACCOUNT
from tidings.numbers.models import NumberClaim, PhoneNumber
from tidings.operators.service import do_create_operator_key
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

NUMBER = "+12025550173"
ADDRESS = "Support@acme.example"  # the domain lower-cased, the local part kept


async def start(client: httpx.AsyncClient, tenant: Tenant, number: str = NUMBER) -> str:
    response = await client.post("/v1/numbers", headers=tenant.headers, json={"number": number})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def verify(client: httpx.AsyncClient, tenant: Tenant, claim_id: str,
                 code: Any) -> httpx.Response:
    return await client.post(f"/v1/numbers/claims/{claim_id}/verify", headers=tenant.headers,
                             json={"code": code})


async def owned(client: httpx.AsyncClient, tenant: Tenant) -> list[str]:
    response = await client.get("/v1/numbers", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return [n["number"] for n in response.json()]


async def claim_state(rt: Runtime) -> list[tuple[str, int, bool]]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = (await session.scalars(select(NumberClaim).order_by(NumberClaim.id))).all()
    return [(c.id, c.attempts, c.verified_at is not None) for c in rows]


async def audit_trail(rt: Runtime, tenant: str) -> list[tuple[str, str, list[str]]]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = (await session.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == tenant,
            AuditEvent.table_name.in_(["number_claims", "phone_numbers"]))
            .order_by(AuditEvent.id))).all()
    return [(e.table_name, e.action, e.fields) for e in rows]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** 6:06d}"


async def test_the_code_sent_to_the_number_completes_the_claim(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    response = await client.post("/v1/numbers", headers=acme.headers,
                                 json={"number": "+1 (202) 555-0173"})
    assert response.status_code == 202, response.text
    started = response.json()
    assert (started["number"], started["status"]) == (NUMBER, "pending")
    assert started["expires_at"].startswith("2026-01-01T00:10:00")
    assert await owned(client, acme) == []

    # The code goes out as an SMS of the platform, through the sandbox carrier...
    await settle(rt, clock)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        sent = (await session.scalars(select(Message))).one()
    assert (sent.tenant_id, sent.direction, sent.channel) == (PLATFORM_ACCOUNT, "outbound",
                                                              "sms")
    assert (sent.connector, sent.status) == ("sandbox", "sent")
    # ...which the claimant cannot read back: its own messages are its own.
    listing = await client.get("/v1/messages", headers=acme.headers)
    assert listing.json()["data"] == []
    [code] = await codes_sent(rt, NUMBER)
    assert_problem(await client.get(f"/v1/messages/{sent.id}", headers=acme.headers), 404,
                   "message_not_found")

    verified = await verify(client, acme, started["id"], code)
    assert verified.status_code == 201, verified.text
    assert (verified.json()["number"], verified.json()["account_id"]) == (NUMBER, acme.id)
    assert await owned(client, acme) == [NUMBER]
    # A claim completes once.
    assert_problem(await verify(client, acme, started["id"], code), 409, "claim_verified")
    assert await audit_trail(rt, acme.id) == [
        ("number_claims", "create", ["number"]),
        ("number_claims", "update", ["attempts", "verified_at"]),
        ("phone_numbers", "create", ["number"]),
    ]


async def test_an_email_address_is_claimed_with_a_code_sent_by_email(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    claim_id = await start(client, acme, "Support@Acme.Example")
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        sent = (await session.scalars(select(Message))).one()
    assert sent.channel == "email"
    [code] = await codes_sent(rt, ADDRESS)
    assert (await verify(client, acme, claim_id, code)).status_code == 201
    assert await owned(client, acme) == [ADDRESS]


async def test_a_wrong_code_counts_and_too_many_end_the_claim(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    claim_id = await start(client, acme)
    [code] = await codes_sent(rt, NUMBER)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        response = await verify(client, acme, claim_id, wrong(code))
        assert_problem(response, 400, "invalid_code")
        assert response.json()["attempts_left"] == MAX_ATTEMPTS - attempt
    assert await claim_state(rt) == [(claim_id, MAX_ATTEMPTS, False)]
    # Even the right code is refused now, and the refusal counts nothing more.
    assert_problem(await verify(client, acme, claim_id, code), 429, "too_many_attempts")
    assert await claim_state(rt) == [(claim_id, MAX_ATTEMPTS, False)]
    assert await owned(client, acme) == []
    assert [a for a in await audit_trail(rt, acme.id) if a[1] == "update"] == [
        ("number_claims", "update", ["attempts"])] * MAX_ATTEMPTS
    # A new claim sends a new code, and that one works.
    second = await start(client, acme)
    assert (await verify(client, acme, second, (await codes_sent(rt, NUMBER))[-1])
            ).status_code == 201


async def test_an_expired_code_is_refused(client: httpx.AsyncClient, rt: Runtime,
                                          clock: FakeClock, acme: Tenant) -> None:
    claim_id = await start(client, acme)
    [code] = await codes_sent(rt, NUMBER)
    clock.advance(CODE_TTL.total_seconds())
    assert_problem(await verify(client, acme, claim_id, code), 400, "claim_expired")
    assert await claim_state(rt) == [(claim_id, 0, False)]
    assert await owned(client, acme) == []


@pytest.mark.parametrize("body", [
    {"code": "12345"}, {"code": "1234567"}, {"code": "12a456"}, {"code": " 123456"},
    {"code": 123456}, {"code": None}, {}, {"code": "123456", "extra": 1}, [],
])
async def test_a_malformed_verification_changes_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, body: Any) -> None:
    claim_id = await start(client, acme)
    response = await client.post(f"/v1/numbers/claims/{claim_id}/verify",
                                 headers=acme.headers, json=body)
    assert_problem(response, 400, "validation_failed")
    assert await claim_state(rt) == [(claim_id, 0, False)]
    [code] = await codes_sent(rt, NUMBER)
    assert (await verify(client, acme, claim_id, code)).status_code == 201


async def test_another_accounts_claim_is_not_found(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    claim_id = await start(client, acme)
    [code] = await codes_sent(rt, NUMBER)
    for target in (claim_id, "ncl_doesnotexist", claim_id + "x" * 60):
        assert_problem(await verify(client, globex, target, code), 404, "claim_not_found")
    assert await claim_state(rt) == [(claim_id, 0, False)]
    assert await owned(client, globex) == []


def _shape(response: httpx.Response) -> tuple[int, str, list[str]]:
    body = response.json()
    return response.status_code, response.headers["content-type"], sorted(body)


async def test_a_number_held_by_another_account_looks_free_until_the_code(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    await own_number(client, rt, acme.headers, NUMBER)
    codes_before = await codes_sent(rt, NUMBER)
    free = await client.post("/v1/numbers", headers=globex.headers,
                             json={"number": "+442079460958"})
    held = await client.post("/v1/numbers", headers=globex.headers,
                             json={"number": "+1 (202) 555-0173"})
    assert _shape(held) == _shape(free)
    assert (held.json()["status"], held.json()["number"]) == ("pending", NUMBER)
    assert held.json()["expires_at"] == free.json()["expires_at"]
    assert await codes_sent(rt, NUMBER) == codes_before  # no code went to the holder
    [free_code] = await codes_sent(rt, "+442079460958")

    wrong_free = await verify(client, globex, free.json()["id"], wrong(free_code))
    # Whatever code is tried, even the holder's last one, it fails like a wrong code.
    for code in (codes_before[-1], wrong(free_code)):
        held_try = await verify(client, globex, held.json()["id"], code)
        assert _shape(held_try) == _shape(wrong_free)
        assert held_try.json()["code"] == "invalid_code"
    assert held_try.json()["attempts_left"] == wrong_free.json()["attempts_left"] - 1
    assert await owned(client, globex) == []
    assert await owned(client, acme) == [NUMBER]
    # The holder itself is told it holds it: it reveals nothing it does not know.
    assert_problem(await client.post("/v1/numbers", headers=acme.headers,
                                     json={"number": NUMBER}), 409, "number_taken")


async def test_a_verified_claim_loses_to_a_number_assigned_meanwhile(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant,
        ops: dict[str, str]) -> None:
    claim_id = await start(client, acme)
    [code] = await codes_sent(rt, NUMBER)
    assigned = await client.post("/v1/operator/numbers", headers=ops,
                                 json={"account_id": globex.id, "number": NUMBER})
    assert assigned.status_code == 201, assigned.text
    assert_problem(await verify(client, acme, claim_id, code), 409, "number_taken")
    assert await owned(client, acme) == []
    assert await claim_state(rt) == [(claim_id, 0, False)]


# --------------------------------------------------------------------------- operator


@pytest.fixture
async def ops(rt: Runtime, clock: FakeClock) -> dict[str, str]:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        made = await do_create_operator_key(session, name="ops", now=clock.now())
    return {"Authorization": f"Bearer {made.secret}"}


async def test_the_operator_assigns_a_number_without_a_code(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant,
        ops: dict[str, str]) -> None:
    response = await client.post("/v1/operator/numbers", headers=ops,
                                 json={"account_id": acme.id, "number": "+1 202 555 0173"})
    assert response.status_code == 201, response.text
    assert (response.json()["number"], response.json()["account_id"]) == (NUMBER, acme.id)
    assert await owned(client, acme) == [NUMBER]
    assert await codes_sent(rt, NUMBER) == []
    assert await audit_trail(rt, acme.id) == [("phone_numbers", "create", ["number"])]
    # The operator sees a held number as held.
    assert_problem(await client.post("/v1/operator/numbers", headers=ops,
                                     json={"account_id": globex.id, "number": NUMBER}),
                   409, "number_taken")
    assert await owned(client, globex) == []


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"account_id": "acc_doesnotexist", "number": NUMBER}, 404, "account_not_found"),
    ({"number": NUMBER}, 400, "validation_failed"),
    ({"account_id": "ACME", "number": "2025550173"}, 400, "invalid_phone_number"),
    ({"account_id": "ACME", "number": NUMBER, "webhook": "x"}, 400, "validation_failed"),
])
async def test_a_bad_assignment_changes_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, ops: dict[str, str],
        body: dict[str, str], status: int, code: str) -> None:
    body = {k: (acme.id if v == "ACME" else v) for k, v in body.items()}
    assert_problem(await client.post("/v1/operator/numbers", headers=ops, json=body),
                   status, code)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        assert await session.scalar(select(func.count()).select_from(PhoneNumber)) == 0
    assert await audit_trail(rt, acme.id) == []


async def test_a_tenant_cannot_assign(client: httpx.AsyncClient, rt: Runtime,
                                      acme: Tenant) -> None:
    response = await client.post("/v1/operator/numbers", headers=acme.headers,
                                 json={"account_id": acme.id, "number": NUMBER})
    assert response.status_code == 401, response.text
    assert await owned(client, acme) == []
