"""Every new endpoint refuses bad input with a clear problem and changes nothing; an
address that has a user gets the same answer as a new one, and a mail, not an account."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.api.test_operator_api import operator_key
from tests.conftest import Tenant, assert_problem, make_tenant
from tests.signup.conftest import DETAILS, logged_in, mailbox, signup_body, token_in
from tests.users.people import person, session_headers
from tidings.accounts.models import Account, AccountStatus
from tidings.audit.models import AuditEvent
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime
from tidings.signup.models import AccountVerification, VerifiedNumber
from tidings.storage.db import SYSTEM
from tidings.users.models import User


async def rows(rt: Runtime) -> dict[str, int]:
    tables = {"accounts": Account, "users": User, "verifications": AccountVerification,
              "verified_numbers": VerifiedNumber, "audit": AuditEvent}
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return {name: int(await session.scalar(select(func.count()).select_from(model)) or 0)
                for name, model in tables.items()}


@pytest.mark.parametrize(("change", "status", "code"), [
    ({"company": "   "}, 400, "invalid_company"),
    ({"email": "not an address"}, 400, "invalid_email_address"),
    ({"country": "XX"}, 400, "invalid_country"),
    ({"country": "D1"}, 400, "invalid_country"),
    ({"password": "short1A"}, 422, "weak_password"),
    ({"password": "password1234A"}, 422, "weak_password"),
    ({"plan": "gold"}, 400, "validation_failed"),
])
async def test_a_bad_sign_up_is_refused_and_creates_nothing(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, change: dict[str, Any],
        status: int, code: str) -> None:
    before = await rows(rt)
    answer = await client.post("/v1/signup", json=signup_body(**change))
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code
    assert await rows(rt) == before
    assert await mailbox(rt, clock) == []


async def test_a_weak_password_names_the_rule(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/signup", json=signup_body(password="alllowercase12"))
    assert_problem(answer, 422, "weak_password")
    assert (answer.json()["rule"], answer.json()["parameter"]) == ("needs_upper", "password")


async def test_sign_up_closed_is_a_403_that_creates_nothing(
        client: httpx.AsyncClient, rt: Runtime) -> None:
    rt.settings = rt.settings.model_copy(update={"signup": "closed"})
    before = await rows(rt)
    assert_problem(await client.post("/v1/signup", json=signup_body()), 403, "signup_closed")
    assert await rows(rt) == before


async def test_an_address_with_a_user_gets_the_same_answer_and_a_mail_not_an_account(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    await person(rt, acme.id, "developer", email="dev@acme.example")
    new = await client.post("/v1/signup", json=signup_body(email="new@nimbus.example"))
    before = await rows(rt)
    taken = await client.post("/v1/signup", json=signup_body(email="DEV@acme.example"))
    assert (taken.status_code, taken.json()) == (new.status_code, new.json())
    after = await rows(rt)
    assert (after["accounts"], after["users"]) == (before["accounts"], before["users"])
    told = [m for m in await mailbox(rt, clock) if m.to == "dev@acme.example"]
    assert [m.subject for m in told] == ["Someone tried to sign up with your address"]
    assert "/signup/confirm" not in told[0].body


async def test_a_bad_or_expired_confirmation_token_is_refused_and_confirms_nothing(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock) -> None:
    await client.post("/v1/signup", json=signup_body())
    token = token_in((await mailbox(rt, clock))[0])
    for bad in ("", "x" * 301, "bm90IGEgdG9rZW4", token[:-2] + ("AA" if token[-2:] != "AA"
                                                                else "BB")):
        answer = await client.post("/v1/signup/confirm", json={"token": bad})
        assert answer.status_code == 400, (bad, answer.text)
    clock.advance(4 * 24 * 3600)
    assert_problem(await client.post("/v1/signup/confirm", json={"token": token}), 400,
                   "token_expired")
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        [row] = (await session.scalars(select(AccountVerification))).all()
    assert row.email_confirmed_at is None


@pytest.mark.parametrize(("change", "code"), [
    ({"country": "ZZ"}, "invalid_country"),
    ({"contact_email": "nope"}, "invalid_email_address"),
    ({"contact_phone": "12"}, None),
    ({"legal_name": ""}, "validation_failed"),
    ({"extra": 1}, "validation_failed"),
])
async def test_bad_verification_details_are_refused_and_change_nothing(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, change: dict[str, Any],
        code: str | None) -> None:
    pending = await make_tenant(rt, "Pending", status=AccountStatus.PENDING_VERIFICATION)
    owner = await session_headers(rt, await person(rt, pending.id, "owner"))
    before = await rows(rt)
    answer = await client.put("/v1/account/verification", headers=owner,
                              json={**DETAILS, **change})
    assert answer.status_code == 400, answer.text
    if code is not None:
        assert answer.json()["code"] == code
    assert await rows(rt) == before


async def test_an_active_account_has_nothing_to_verify(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    owner = await session_headers(rt, await person(rt, acme.id, "owner"))
    answer = await client.put("/v1/account/verification", headers=owner, json=DETAILS)
    assert_problem(answer, 409, "verification_closed")
    assert (await client.get("/v1/account/verification", headers=owner)).json()[
        "status"] == "awaiting_details"


@pytest.fixture
async def ops(rt: Runtime, clock: FakeClock) -> dict[str, str]:
    _, secret = await operator_key(rt, clock)
    return {"Authorization": f"Bearer {secret}"}


async def test_the_operator_cannot_verify_what_is_not_pending_or_not_filled_in(
        client: httpx.AsyncClient, rt: Runtime, ops: dict[str, str], acme: Tenant) -> None:
    pending = await make_tenant(rt, "Pending", status=AccountStatus.PENDING_VERIFICATION)
    before = await rows(rt)
    cases = [
        (f"/v1/operator/accounts/{acme.id}/verify", {"outcome": "trial"}, 409,
         "account_not_pending"),
        (f"/v1/operator/accounts/{pending.id}/verify", {"outcome": "active"}, 409,
         "verification_not_submitted"),
        ("/v1/operator/accounts/acc_nope/verify", {"outcome": "trial"}, 404,
         "account_not_found"),
        (f"/v1/operator/accounts/{'acc_' + 'x' * 60}/reject", {"reason": "No."}, 404,
         "account_not_found"),
        (f"/v1/operator/accounts/{pending.id}/verify", {"outcome": "gold"}, 400,
         "validation_failed"),
        (f"/v1/operator/accounts/{pending.id}/reject", {"reason": "   "}, 400,
         "reason_required"),
        (f"/v1/operator/accounts/{pending.id}/reject", {}, 400, "validation_failed"),
    ]
    for path, body, status, code in cases:
        assert_problem(await client.post(path, headers=ops, json=body), status, code)
    assert await rows(rt) == before


async def test_a_client_cannot_call_the_operators_routes(
        client: httpx.AsyncClient, acme: Tenant) -> None:
    answer = await client.post(f"/v1/operator/accounts/{acme.id}/verify",
                               headers=acme.headers, json={"outcome": "active"})
    assert answer.status_code == 401


async def test_a_rejection_is_mailed_with_its_reason_and_the_owner_may_try_again(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, ops: dict[str, str]) -> None:
    await client.post("/v1/signup", json=signup_body())
    await client.post("/v1/signup/confirm",
                      json={"token": token_in((await mailbox(rt, clock))[0])})
    owner = await logged_in(client, clock, "founder@nimbus.example")
    account_id = (await client.get("/v1/account", headers=owner)).json()["id"]
    await client.put("/v1/account/verification", headers=owner, json=DETAILS)
    rejected = await client.post(f"/v1/operator/accounts/{account_id}/reject", headers=ops,
                                 json={"reason": "The registration number is not found."})
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["account_status"] == "pending_verification"
    told = (await mailbox(rt, clock))[-1]
    assert told.kind == "verification"
    assert "registration number is not found" in told.body
    assert (await client.get("/v1/operator/verifications", headers=ops)).json() == []
    again = await client.put("/v1/account/verification", headers=owner, json=DETAILS)
    assert again.json()["status"] == "submitted"


async def test_verified_numbers_refuse_garbage_and_count_wrong_codes(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    trial = await make_tenant(rt, "Trialist", status=AccountStatus.TRIAL)
    assert_problem(await client.post("/v1/verified-numbers", headers=acme.headers,
                                     json={"number": "+4915123456789"}), 403, "not_a_trial")
    for bad in ("12", "not a number", "ann@example.com"):
        answer = await client.post("/v1/verified-numbers", headers=trial.headers,
                                   json={"number": bad})
        assert answer.status_code in (400, 403), answer.text
    started = await client.post("/v1/verified-numbers", headers=trial.headers,
                                json={"number": "+49 151 23456789"})
    assert started.json()["number"] == "+4915123456789"
    number_id = started.json()["id"]
    wrong = await client.post(f"/v1/verified-numbers/{number_id}/confirm",
                              headers=trial.headers, json={"code": "000000"})
    assert_problem(wrong, 400, "invalid_code")
    assert wrong.json()["attempts_left"] == 4
    malformed = await client.post(f"/v1/verified-numbers/{number_id}/confirm",
                                  headers=trial.headers, json={"code": "12ab"})
    assert malformed.status_code == 400
    for other in (f"/v1/verified-numbers/{number_id}/confirm",):
        assert_problem(await client.post(other, headers=globex.headers,
                                         json={"code": "000000"}),
                       404, "verified_number_not_found")
    assert_problem(await client.delete(f"/v1/verified-numbers/{number_id}",
                                       headers=globex.headers), 404,
                   "verified_number_not_found")
    assert_problem(await client.delete("/v1/verified-numbers/" + "v" * 80,
                                       headers=trial.headers), 404,
                   "verified_number_not_found")
    [listed] = (await client.get("/v1/verified-numbers", headers=trial.headers)).json()
    assert (listed["id"], listed["status"]) == (number_id, "pending")
    assert (await client.get("/v1/verified-numbers", headers=globex.headers)).json() == []
    deleted = await client.delete(f"/v1/verified-numbers/{number_id}", headers=trial.headers)
    assert deleted.status_code == 204
    assert (await client.get("/v1/verified-numbers", headers=trial.headers)).json() == []
