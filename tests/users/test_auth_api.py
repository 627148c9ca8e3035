"""Logging in as a person would, through the real app: a temporary password changed at
the first log-in, a second factor enrolled and then asked for, lock-outs, sessions that
end, and the audit events an owner reads afterwards."""

from __future__ import annotations

from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import select

from tests.conftest import TEST_ACTOR, Tenant
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.users import login as login_module
from tidings.users.models import RecoveryCode, User
from tidings.users.service import create_user
from tidings.users.totp import current_step

from .people import PASSWORD, Person, person, session_headers

NEW_PASSWORD = "Velvet-Orchard-Compass-73"
PROBLEM = "application/problem+json"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


async def log_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/v1/auth/login", json={"email": email, "password": password})


async def token_of(client: httpx.AsyncClient, rt: Runtime, who: Person) -> str:
    """Log in with the password and, if asked, the current code."""
    first = await log_in(client, who.email, who.password)
    assert first.status_code == 200, first.text
    if "token" in first.json():
        return str(first.json()["token"])
    done = await client.post("/v1/auth/mfa", json={"challenge": first.json()["challenge"],
                                                   "code": who.code(rt.clock.now())})
    assert done.status_code == 200, done.text
    return str(done.json()["token"])


async def user_row(rt: Runtime, user_id: str) -> User:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        user = await session.get(User, user_id)
    assert user is not None
    return user


async def audit_actions(client: httpx.AsyncClient, headers: dict[str, str],
                        **params: str) -> list[str]:
    response = await client.get("/v1/audit-events", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return [e["action"] for e in response.json()["data"]]


# --------------------------------------------------------------------- first log-in


async def test_a_temporary_password_logs_in_only_to_be_changed(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    made = await create_user(rt, account_id=acme.id, email="dev@example.com",
                             role="developer", actor=TEST_ACTOR)
    response = await log_in(client, "dev@example.com", made.temporary_password)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"]["must_change_password"] is True
    assert body["user"]["email"] == "dev@example.com"
    assert body["token"].startswith("tds_")
    headers = bearer(body["token"])

    assert_problem(await client.get("/v1/messages", headers=headers), 403,
                   "password_change_required")
    weak = await client.post("/v1/auth/password", headers=headers, json={
        "current_password": made.temporary_password, "new_password": "password12"})
    assert assert_problem(weak, 422, "weak_password")["rule"] == "needs_upper"
    wrong = await client.post("/v1/auth/password", headers=headers, json={
        "current_password": "Not-The-Temporary-1", "new_password": NEW_PASSWORD})
    assert_problem(wrong, 400, "wrong_password")

    changed = await client.post("/v1/auth/password", headers=headers, json={
        "current_password": made.temporary_password, "new_password": NEW_PASSWORD})
    assert changed.status_code == 204, changed.text
    assert (await client.get("/v1/messages", headers=headers)).status_code == 200
    session = (await client.get("/v1/auth/session", headers=headers)).json()
    assert session["gate"] is None
    assert "messages:send" in session["permissions"]
    assert "users:manage" not in session["permissions"]


async def test_a_temporary_password_past_its_expiry_is_refused(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    made = await create_user(rt, account_id=acme.id, email="late@example.com",
                             role="support", actor=TEST_ACTOR)
    clock.advance(73 * 3600)
    assert_problem(await log_in(client, "late@example.com", made.temporary_password), 401,
                   "temporary_password_expired")


async def test_a_password_older_than_ninety_days_must_be_changed(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    who = await person(rt, acme.id, "developer", mfa=False)
    clock.advance(91 * 86400)
    headers = bearer(await token_of(client, rt, who))
    assert_problem(await client.get("/v1/messages", headers=headers), 403,
                   "password_change_required")


async def test_the_last_passwords_cannot_be_used_again(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    who = await person(rt, acme.id, "developer", mfa=False)
    headers = bearer(await token_of(client, rt, who))
    same = await client.post("/v1/auth/password", headers=headers, json={
        "current_password": PASSWORD, "new_password": PASSWORD})
    assert assert_problem(same, 422, "weak_password")["rule"] == "reused"
    assert (await user_row(rt, who.user_id)).password_changed_at == rt.clock.now()


# ------------------------------------------------------------ wrong guesses and locks


async def test_an_unknown_address_and_a_wrong_password_get_the_same_answer(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
        monkeypatch: pytest.MonkeyPatch) -> None:
    who = await person(rt, acme.id, "developer", mfa=False)
    verified: list[str] = []
    real = login_module.verify_password

    def counting(stored: str, password: str) -> bool:
        verified.append(stored)
        return real(stored, password)

    monkeypatch.setattr(login_module, "verify_password", counting)
    unknown = await log_in(client, "nobody@example.com", PASSWORD)
    wrong = await log_in(client, who.email, "Wrong-Password-123")
    assert_problem(unknown, 401, "invalid_credentials")
    assert unknown.json() == wrong.json()
    assert len(verified) == 2  # the miss did the same argon2 work as the hit


async def test_five_failures_lock_the_user_for_fifteen_minutes_then_longer(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    who = await person(rt, acme.id, "developer", mfa=False)
    owner = await person(rt, acme.id, "owner")
    for _ in range(5):
        assert_problem(await log_in(client, who.email, "Wrong-Password-123"), 401,
                       "invalid_credentials")
    locked = await log_in(client, who.email, PASSWORD)
    assert_problem(locked, 401, "invalid_credentials")  # the right password, yet locked
    clock.advance(15 * 60)
    assert (await log_in(client, who.email, PASSWORD)).status_code == 200

    for _ in range(5):
        await log_in(client, who.email, "Wrong-Password-123")
    clock.advance(15 * 60)
    assert_problem(await log_in(client, who.email, PASSWORD), 401, "invalid_credentials")
    clock.advance(15 * 60)  # the second lock lasts twice as long
    assert (await log_in(client, who.email, PASSWORD)).status_code == 200

    owner_headers = await session_headers(rt, owner)
    actions = await audit_actions(client, owner_headers, actor=f"user:{who.user_id}")
    assert actions.count("user.login_failed") == 10
    assert actions.count("user.locked") == 2
    assert actions.count("user.login") == 2


# ---------------------------------------------------------------- the second factor


async def test_an_owner_must_enrol_a_second_factor_then_logs_in_with_it(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    who = await person(rt, acme.id, "owner", mfa=False)
    headers = bearer(await token_of(client, rt, who))
    assert_problem(await client.get("/v1/users", headers=headers), 403, "mfa_required")

    enrol = await client.post("/v1/auth/mfa/totp", headers=headers)
    assert enrol.status_code == 200, enrol.text
    secret = enrol.json()["secret"]
    assert enrol.json()["otpauth_uri"].startswith("otpauth://totp/")
    assert "<svg" in enrol.json()["qr_svg"]
    stored = await user_row(rt, who.user_id)
    assert stored.mfa_secret_enc is not None
    assert secret.encode() not in stored.mfa_secret_enc

    totp = pyotp.TOTP(secret)
    wrong = await client.post("/v1/auth/mfa/totp/confirm", headers=headers,
                              json={"code": "000000" if totp.at(clock.now()) != "000000"
                                    else "111111"})
    assert_problem(wrong, 400, "invalid_code")
    confirmed = await client.post("/v1/auth/mfa/totp/confirm", headers=headers,
                                  json={"code": totp.at(clock.now())})
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10
    assert (await client.get("/v1/users", headers=headers)).status_code == 200
    again = await client.post("/v1/auth/mfa/totp", headers=headers)
    assert_problem(again, 409, "mfa_already_enabled")

    clock.advance(30)
    first = await log_in(client, who.email, PASSWORD)
    assert first.json()["mfa_required"] is True
    challenge = first.json()["challenge"]
    code = totp.at(clock.now())
    done = await client.post("/v1/auth/mfa", json={"challenge": challenge, "code": code})
    assert done.status_code == 200, done.text
    replay = await client.post("/v1/auth/mfa", json={"challenge": challenge, "code": code})
    assert_problem(replay, 401, "invalid_code")  # a used step never works twice

    recovery = await client.post("/v1/auth/mfa", json={"challenge": challenge,
                                                       "code": codes[0].upper()})
    assert recovery.status_code == 200, recovery.text
    reused = await client.post("/v1/auth/mfa", json={"challenge": challenge,
                                                     "code": codes[0]})
    assert_problem(reused, 401, "invalid_code")
    async with rt.db.transaction(tenant=acme.id, write=False) as session:
        hashes = (await session.scalars(select(RecoveryCode.code_hash))).all()
    assert not set(codes) & set(hashes)


@pytest.mark.parametrize("challenge", ["", "x" * 401, "bm90LWEtY2hhbGxlbmdl", "a.b.c.d",
                                       "dXNyXzEuOTk5OTk5OTk5OS4xLmZvcmdlZA"])
async def test_a_forged_or_garbage_challenge_is_refused(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, challenge: str) -> None:
    response = await client.post("/v1/auth/mfa", json={"challenge": challenge,
                                                       "code": "123456"})
    assert response.status_code in (400, 401), response.text
    assert response.json()["code"] in {"validation_failed", "invalid_challenge"}


async def test_a_challenge_expires_after_five_minutes(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    who = await person(rt, acme.id, "admin")
    challenge = (await log_in(client, who.email, PASSWORD)).json()["challenge"]
    clock.advance(5 * 60)
    expired = await client.post("/v1/auth/mfa", json={"challenge": challenge,
                                                      "code": who.code(clock.now())})
    assert_problem(expired, 401, "challenge_expired")
    assert current_step(clock.now()) > 0


# ---------------------------------------------------------------------- sessions


async def test_a_session_ends_at_logout_when_idle_and_after_twelve_hours(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    who = await person(rt, acme.id, "developer", mfa=False)
    first = bearer(await token_of(client, rt, who))
    assert (await client.post("/v1/auth/logout", headers=first)).status_code == 204
    assert_problem(await client.get("/v1/messages", headers=first), 401, "session_ended")

    idle = bearer(await token_of(client, rt, who))
    clock.advance(31 * 60)
    assert_problem(await client.get("/v1/messages", headers=idle), 401, "session_expired")

    busy = bearer(await token_of(client, rt, who))
    for _ in range(24):  # used every 29 minutes, it lasts 12 hours (24 x 29 min = 11.6 h)
        clock.advance(29 * 60)
        assert (await client.get("/v1/messages", headers=busy)).status_code == 200
    clock.advance(29 * 60)
    assert_problem(await client.get("/v1/messages", headers=busy), 401, "session_expired")


async def test_a_password_change_ends_the_other_sessions(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    who = await person(rt, acme.id, "developer", mfa=False)
    here = bearer(await token_of(client, rt, who))
    elsewhere = bearer(await token_of(client, rt, who))
    changed = await client.post("/v1/auth/password", headers=here, json={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert changed.status_code == 204, changed.text
    assert (await client.get("/v1/messages", headers=here)).status_code == 200
    assert_problem(await client.get("/v1/messages", headers=elsewhere), 401, "session_ended")
    assert_problem(await log_in(client, who.email, PASSWORD), 401, "invalid_credentials")
    assert (await log_in(client, who.email, NEW_PASSWORD)).status_code == 200


@pytest.mark.parametrize("token", ["tds_short", "tds_" + "A" * 43, "tds_" + "A!" * 22,
                                   "tds_" + "A" * 400])
async def test_garbage_session_tokens_are_refused(
        client: httpx.AsyncClient, acme: Tenant, token: str) -> None:
    response = await client.get("/v1/account", headers=bearer(token))
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("body", [{}, {"email": "a@example.com"}, {"password": "x"},
                                  {"email": "", "password": "x"},
                                  {"email": "a@example.com", "password": "x" * 1025},
                                  {"email": "a@example.com", "password": "x", "extra": 1},
                                  {"email": ["a"], "password": "x"}])
async def test_garbage_log_in_bodies_are_a_400(
        client: httpx.AsyncClient, acme: Tenant, body: dict[str, Any]) -> None:
    assert_problem(await client.post("/v1/auth/login", json=body), 400, "validation_failed")


async def test_an_api_key_cannot_log_out_or_change_a_password(
        client: httpx.AsyncClient, acme: Tenant) -> None:
    assert_problem(await client.post("/v1/auth/logout", headers=acme.headers), 400,
                   "not_a_session")
    assert_problem(await client.post("/v1/auth/password", headers=acme.headers, json={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD}), 400, "not_a_session")


async def test_no_password_token_or_code_reaches_the_logs_or_the_audit(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
        capsys: pytest.CaptureFixture[str]) -> None:
    who = await person(rt, acme.id, "admin")
    token = await token_of(client, rt, who)
    await log_in(client, who.email, "Wrong-Password-123")
    await client.post("/v1/auth/password", headers=bearer(token), json={
        "current_password": PASSWORD, "new_password": NEW_PASSWORD})
    captured = capsys.readouterr()
    events = await client.get("/v1/audit-events", headers=bearer(token))
    for secret in (PASSWORD, NEW_PASSWORD, token, "Wrong-Password-123", who.email):
        assert secret not in captured.out + captured.err
        assert secret not in events.text
