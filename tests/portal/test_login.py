"""Logging in and out of the portal, the second factor, the gates; what a refused or
forged attempt shows and that it changes nothing."""

from __future__ import annotations

import httpx
import pyotp
import pytest
from sqlalchemy import select

from tests.conftest import TEST_ACTOR, Tenant
from tests.portal.pages import field_error, form_token, page_error, signed_in
from tests.users.people import PASSWORD, person
from tidings.audit.models import AuditEvent
from tidings.core.clock import FakeClock
from tidings.portal import csrf, session_cookie
from tidings.portal.security import CONTENT_SECURITY_POLICY
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.users.models import UserSession
from tidings.users.service import create_user


async def login_form(client: httpx.AsyncClient, next_path: str = "") -> str:
    page = await client.get("/portal/login", params={"next": next_path} if next_path else None)
    assert page.status_code == 200
    return form_token(page)


async def post_login(client: httpx.AsyncClient, email: str, password: str,
                     next_path: str = "") -> httpx.Response:
    token = await login_form(client)
    return await client.post("/portal/login", data={
        "_csrf": token, "email": email, "password": password, "next": next_path})


async def open_sessions(rt: Runtime) -> int:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = await session.scalars(select(UserSession).where(UserSession.ended_at.is_(None)))
        return len(rows.all())


async def test_a_page_without_a_session_sends_to_the_login_and_back(
        client: httpx.AsyncClient) -> None:
    answer = await client.get("/portal/messages?status=failed")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/portal/login?next=/portal/messages%3Fstatus%3Dfailed"


async def test_the_login_page_is_labelled_and_locked_down(client: httpx.AsyncClient) -> None:
    page = await client.get("/portal/login")
    assert '<label for="email">Email</label>' in page.text
    assert '<label for="password">Password</label>' in page.text
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "<script>" not in page.text
    assert " style=" not in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{csrf.COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie


async def test_logging_in_with_a_second_factor(client: httpx.AsyncClient, rt: Runtime,
                                               clock: FakeClock, acme: Tenant) -> None:
    owner = await person(rt, acme.id, "owner")
    first = await post_login(client, owner.email, PASSWORD, next_path="/portal/messages")
    assert first.status_code == 200
    assert '<label for="code">Code</label>' in first.text
    assert session_cookie.COOKIE not in client.cookies
    token = form_token(first)
    challenge = first.text.split('name="challenge" value="')[1].split('"')[0]
    wrong = await client.post("/portal/login/code", data={
        "_csrf": token, "challenge": challenge, "code": "000000", "next": "/portal/messages"})
    assert wrong.status_code == 400
    assert field_error(wrong, "code") == "The code is wrong or was used already."
    done = await client.post("/portal/login/code", data={
        "_csrf": token, "challenge": challenge, "code": owner.code(clock.now()),
        "next": "/portal/messages"})
    assert done.status_code == 303
    assert done.headers["location"] == "/portal/messages"
    cookies = done.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith(f"{session_cookie.COOKIE}="))
    assert "HttpOnly" in session
    assert "SameSite=lax" in session
    assert any(c.startswith(f"{csrf.COOKIE}=") for c in cookies)  # a new form token
    assert (await client.get("/portal/messages")).status_code == 200


async def test_a_wrong_password_and_an_unknown_address_look_alike(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    owner = await person(rt, acme.id, "owner")
    wrong = await post_login(client, owner.email, "not the password")
    unknown = await post_login(client, "nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert field_error(wrong, "password") == field_error(unknown, "password") == \
        "The e-mail address or the password is wrong."
    assert await open_sessions(rt) == 0


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"email": "", "password": "x"}, "email", "Email: this field is required."),
    ({"email": "a@example.com", "password": ""}, "password", "Password: this field is required."),
    ({"email": "a" * 400 + "@example.com", "password": "x"}, "email",
     "Email is too long: at most 320 characters."),
    ({"email": "a\x00b@example.com", "password": "x"}, "email",
     "Email holds characters that cannot be typed."),
    ({}, "email", "Email: this field is required."),
])
async def test_bad_login_input_is_shown_next_to_its_field(
        client: httpx.AsyncClient, rt: Runtime, fields: dict[str, str], field: str,
        message: str) -> None:
    token = await login_form(client)
    page = await client.post("/portal/login", data={"_csrf": token, **fields})
    assert page.status_code == 400
    assert field_error(page, field) == message
    assert await open_sessions(rt) == 0


async def test_a_form_without_its_token_or_with_a_stale_one_changes_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    owner = await person(rt, acme.id, "owner", mfa=False)
    await login_form(client)
    for token in (None, "forged", "x" * 43):
        data = {"email": owner.email, "password": PASSWORD}
        if token is not None:
            data["_csrf"] = token
        refused = await client.post("/portal/login", data=data)
        assert refused.status_code == 403
        assert page_error(refused) == "csrf_failed"
    cross_site = await client.post("/portal/login", headers={"Sec-Fetch-Site": "cross-site"},
                                   data={"_csrf": client.cookies[csrf.COOKIE],
                                         "email": owner.email, "password": PASSWORD})
    assert cross_site.status_code == 403
    assert await open_sessions(rt) == 0


async def test_logging_out_ends_the_session_and_stales_old_forms(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    owner = await person(rt, acme.id, "developer", mfa=False)
    done = await post_login(client, owner.email, PASSWORD)
    assert done.status_code == 303
    dashboard = await client.get("/portal/messages")
    assert dashboard.status_code == 200
    token = form_token(dashboard)
    out = await client.post("/portal/logout", data={"_csrf": token})
    assert out.status_code == 303
    assert out.headers["location"] == "/portal/login"
    assert await open_sessions(rt) == 0
    assert (await client.get("/portal/messages")).status_code == 303
    stale = await client.post("/portal/logout", data={"_csrf": token})
    assert stale.status_code == 403


async def test_a_temporary_password_must_be_changed_first(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    made = await create_user(rt, account_id=acme.id, email="new@example.com", role="developer",
                             actor=TEST_ACTOR)
    done = await post_login(client, "new@example.com", made.temporary_password)
    assert done.status_code == 303
    gated = await client.get("/portal/messages")
    assert gated.status_code == 303
    assert gated.headers["location"] == "/portal/password"
    page = await client.get("/portal/password")
    token = form_token(page)
    weak = await client.post("/portal/password", data={
        "_csrf": token, "current_password": made.temporary_password, "new_password": "short"})
    assert weak.status_code == 400
    assert field_error(weak, "new_password")
    changed = await client.post("/portal/password", data={
        "_csrf": token, "current_password": made.temporary_password,
        "new_password": "Copper-Meadow-Violin-88"})
    assert changed.status_code == 303
    assert (await client.get("/portal/messages")).status_code == 200


async def test_an_owner_without_a_second_factor_enrols_one(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    owner = await person(rt, acme.id, "owner", mfa=False)
    await signed_in(client, rt, owner)
    gated = await client.get("/portal")
    assert gated.status_code == 303
    assert gated.headers["location"] == "/portal/mfa"
    page = await client.get("/portal/mfa")
    assert 'src="data:image/svg+xml;charset=utf-8,' in page.text
    secret = page.text.split('id="totp-secret">')[1].split("<")[0]
    token = form_token(page)
    wrong = await client.post("/portal/mfa", data={"_csrf": token, "code": "123"})
    assert wrong.status_code == 400
    assert field_error(wrong, "code")
    done = await client.post("/portal/mfa", data={
        "_csrf": token, "code": pyotp.TOTP(secret).at(clock.now())})
    assert done.status_code == 200
    assert 'id="recovery-codes"' in done.text
    assert (await client.get("/portal/dashboard")).status_code == 200
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        actions = (await session.scalars(select(AuditEvent.action).where(
            AuditEvent.tenant_id == acme.id))).all()
    assert "user.mfa_enable" in actions
