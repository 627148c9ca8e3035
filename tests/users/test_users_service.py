"""Creating users: a temporary password shown once, the address kept encrypted and
unique across the platform, an audit event, and bad input that changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.conftest import TEST_ACTOR, Tenant
from tidings.audit.models import AuditEvent
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.storage.keystore import tenant_keys_table
from tidings.users.models import User
from tidings.users.passwords import verify_password
from tidings.users.service import TEMPORARY_PASSWORD_HOURS, create_user, list_users
from tidings.web.errors import Conflict, InvalidRequest, NotFound


async def users_in(rt: Runtime, tenant: str = SYSTEM) -> list[User]:
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        return list((await session.scalars(select(User))).all())


async def test_a_user_gets_a_temporary_password_that_its_hash_verifies(
        rt: Runtime, acme: Tenant) -> None:
    made = await create_user(rt, account_id=acme.id, email=" Ann@Example.COM ", role="owner",
                             actor=TEST_ACTOR)
    assert (made.email, made.role, made.account_id) == ("Ann@example.com", "owner", acme.id)
    assert made.expires_at == rt.clock.now() + timedelta(hours=TEMPORARY_PASSWORD_HOURS)
    [stored] = await users_in(rt)
    assert stored.id == made.id
    assert stored.tenant_id == acme.id
    assert verify_password(stored.password_hash, made.temporary_password)
    assert stored.password_temporary_until == made.expires_at  # changed at the first login
    assert made.temporary_password not in stored.password_hash


async def test_the_address_is_stored_encrypted_and_found_by_its_blind_index(
        rt: Runtime, acme: Tenant) -> None:
    made = await create_user(rt, account_id=acme.id, email="ann@example.com", role="admin",
                             actor=TEST_ACTOR)
    [stored] = await users_in(rt)
    assert b"ann@example.com" not in stored.email_enc
    assert "ann" not in stored.email_index
    keys = await rt.vault.keys_for(acme.id)
    assert keys.decrypt(stored.email_enc, field="users.email") == made.email


async def test_creating_a_user_is_an_audit_event_naming_the_actor_and_no_value(
        rt: Runtime, acme: Tenant) -> None:
    made = await create_user(rt, account_id=acme.id, email="ann@example.com", role="support",
                             actor=TEST_ACTOR)
    async with rt.db.transaction(tenant=acme.id, write=False) as session:
        [event] = (await session.scalars(select(AuditEvent).where(
            AuditEvent.action == "user.create"))).all()
    assert (event.actor_type, event.actor_id, event.row_id) == (
        TEST_ACTOR.type, TEST_ACTOR.id, made.id)
    assert "ann" not in str(event.fields)
    assert made.temporary_password not in str(event.fields)


async def test_an_address_that_has_a_user_in_any_account_is_refused(
        rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    await create_user(rt, account_id=acme.id, email="ann@example.com", role="owner",
                      actor=TEST_ACTOR)
    with pytest.raises(Conflict) as taken:  # another case, another account: the same person
        await create_user(rt, account_id=globex.id, email="ANN@example.com", role="owner",
                          actor=TEST_ACTOR)
    assert taken.value.code == "email_taken"
    assert len(await users_in(rt)) == 1


@pytest.mark.parametrize(("email", "role", "error", "code"), [
    ("not an address", "owner", InvalidRequest, "invalid_email_address"),
    ("", "owner", InvalidRequest, "invalid_email_address"),
    ("ann@example.com\n", "root", InvalidRequest, "unknown_role"),
    ("ann@example.com", "Owner", InvalidRequest, "unknown_role"),
    ("ann@example.com", "", InvalidRequest, "unknown_role"),
])
async def test_bad_input_is_refused_and_stores_nothing(
        rt: Runtime, acme: Tenant, email: str, role: str, error: type[Exception],
        code: str) -> None:
    with pytest.raises(error) as refused:
        await create_user(rt, account_id=acme.id, email=email, role=role, actor=TEST_ACTOR)
    assert getattr(refused.value, "code", None) == code
    assert await users_in(rt) == []


async def test_an_unknown_account_is_not_found_and_stores_nothing(rt: Runtime) -> None:
    unknown = "acc_00000000000000000000000000"
    with pytest.raises(NotFound):
        await create_user(rt, account_id=unknown, email="a@b.example", role="owner",
                          actor=TEST_ACTOR)
    with pytest.raises(NotFound):
        await list_users(rt, account_id=unknown)
    assert await users_in(rt) == []
    async with rt.vault.keystore.connect() as conn:  # no keys made for it either
        made = (await conn.execute(select(tenant_keys_table.c.tenant_id).where(
            tenant_keys_table.c.tenant_id == unknown))).all()
    assert made == []


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)  # row-level security is PostgreSQL's
async def test_an_account_sees_only_its_own_users(
        rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    await create_user(rt, account_id=acme.id, email="ann@acme.example", role="owner",
                      actor=TEST_ACTOR)
    await create_user(rt, account_id=globex.id, email="bob@globex.example", role="owner",
                      actor=TEST_ACTOR)
    async with rt.db.transaction(tenant=globex.id, write=False) as session:
        seen = (await session.scalars(select(User.tenant_id))).all()
    assert list(seen) == [globex.id]
    assert len(await users_in(rt)) == 2  # the cross-tenant role sees both


async def test_an_accounts_users_are_listed_with_their_addresses_in_clear(
        rt: Runtime, clock: FakeClock, acme: Tenant, globex: Tenant) -> None:
    first = await create_user(rt, account_id=acme.id, email="ann@example.com", role="owner",
                              actor=TEST_ACTOR)
    clock.advance(1)
    second = await create_user(rt, account_id=acme.id, email="bob@example.com",
                               role="support", actor=TEST_ACTOR)
    await create_user(rt, account_id=globex.id, email="eve@example.com", role="owner",
                      actor=TEST_ACTOR)
    listed = await list_users(rt, account_id=acme.id)
    assert [(u.id, u.email, u.role, u.status) for u in listed] == [
        (first.id, "ann@example.com", "owner", "active"),
        (second.id, "bob@example.com", "support", "active")]
    assert all(u.must_change_password and not u.mfa_enabled for u in listed)
    assert await list_users(rt, account_id=globex.id) != []
    with pytest.raises(NotFound):
        await list_users(rt, account_id="acc_00000000000000000000000000")
