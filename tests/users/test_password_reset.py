"""A forgotten password: the same answer for every address, a token by mail to a
known one, used once, within the hour, for a password the policy accepts."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import Tenant
from tests.mail.test_mail_jobs import mailbox
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime

from .people import PASSWORD, person, session_headers
from .test_auth_api import NEW_PASSWORD, assert_problem, log_in


async def mailed_token(rt: Runtime) -> str:
    await rt.worker_pool().drain()
    kept = await mailbox(rt)
    assert kept, "no mail"
    assert kept[-1].kind == "password_reset"
    found = re.search(r"^([A-Za-z0-9_-]{40,})$", kept[-1].body, re.MULTILINE)
    assert found, kept[-1].body
    return found.group(1)


async def test_a_reset_token_by_mail_sets_a_new_password_once(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    who = await person(rt, acme.id, "developer", mfa=False)
    old_session = await session_headers(rt, who)
    unknown = await client.post("/v1/auth/password-reset", json={"email": "no@example.com"})
    known = await client.post("/v1/auth/password-reset", json={"email": who.email.upper()})
    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()
    token = await mailed_token(rt)
    assert len(await mailbox(rt)) == 1  # nothing to the unknown address

    weak = await client.post("/v1/auth/password-reset/confirm",
                             json={"token": token, "new_password": "short"})
    assert assert_problem(weak, 422, "weak_password")["rule"] == "too_short"
    reused = await client.post("/v1/auth/password-reset/confirm",
                               json={"token": token, "new_password": PASSWORD})
    assert assert_problem(reused, 422, "weak_password")["rule"] == "reused"
    done = await client.post("/v1/auth/password-reset/confirm",
                             json={"token": token, "new_password": NEW_PASSWORD})
    assert done.status_code == 204, done.text
    assert_problem(await client.get("/v1/messages", headers=old_session), 401,
                   "session_ended")
    assert (await log_in(client, who.email, NEW_PASSWORD)).status_code == 200
    again = await client.post("/v1/auth/password-reset/confirm",
                              json={"token": token, "new_password": "Another-Fresh-Pass-9"})
    assert_problem(again, 400, "invalid_reset_token")


async def test_a_reset_token_expires_after_an_hour_and_unlocks_when_used(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    who = await person(rt, acme.id, "developer", mfa=False)
    for _ in range(5):
        await log_in(client, who.email, "Wrong-Password-123")
    await client.post("/v1/auth/password-reset", json={"email": who.email})
    stale = await mailed_token(rt)
    clock.advance(3600)
    expired = await client.post("/v1/auth/password-reset/confirm",
                                json={"token": stale, "new_password": NEW_PASSWORD})
    assert_problem(expired, 400, "reset_token_expired")
    await client.post("/v1/auth/password-reset", json={"email": who.email})
    fresh = await mailed_token(rt)
    done = await client.post("/v1/auth/password-reset/confirm",
                             json={"token": fresh, "new_password": NEW_PASSWORD})
    assert done.status_code == 204, done.text
    assert (await log_in(client, who.email, NEW_PASSWORD)).status_code == 200


@pytest.mark.parametrize("body", [
    {"token": "x", "new_password": NEW_PASSWORD},
    {"token": "dXNyXzEuOTk5OTk5OTk5OS4xLmZvcmdlZA", "new_password": NEW_PASSWORD},
    {"token": "a" * 401, "new_password": NEW_PASSWORD},
    {"token": "ok"}, {"new_password": NEW_PASSWORD}, {},
    {"token": "x", "new_password": NEW_PASSWORD, "email": "a@example.com"},
])
async def test_bad_reset_confirmations_are_a_400(
        client: httpx.AsyncClient, acme: Tenant, body: dict[str, str]) -> None:
    response = await client.post("/v1/auth/password-reset/confirm", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] in {"invalid_reset_token", "validation_failed"}


@pytest.mark.parametrize("body", [{}, {"email": ""}, {"email": "a" * 321},
                                  {"email": "a@example.com", "x": 1}])
async def test_bad_reset_requests_are_a_400(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, body: dict[str, str]) -> None:
    assert_problem(await client.post("/v1/auth/password-reset", json=body), 400,
                   "validation_failed")
    await rt.worker_pool().drain()
    assert await mailbox(rt) == []
