"""The migrations build the indexes the models describe, and the latest one steps down
and up again. On a real SQLite file and, when configured, on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

import tidings.app  # noqa: F401 - every model registered on Base.metadata
from tests.conftest import TEST_ACTOR
from tests.pg import OWNER_ROLE, PG_ADMIN_URL, as_owner, fresh_database, run_as_admin
from tidings.core.settings import Settings
from tidings.messaging.inbound import receive_inbound
from tidings.migrations.run import _at_head, alembic_config, head_revision, stored_revision, upgrade
from tidings.numbers.models import NUMBER_FIELD, PhoneNumber
from tidings.numbers.service import do_assign_number, list_numbers
from tidings.runtime import close_runtime, migrate, open_runtime
from tidings.storage.db import SYSTEM, Base, set_tenant_setting
from tidings.web.errors import Conflict


async def _index_differences(url: str) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            diffs = await conn.run_sync(lambda sync: compare_metadata(
                MigrationContext.configure(sync), Base.metadata))
    finally:
        await engine.dispose()
    return [d for d in diffs if isinstance(d, tuple) and d[0] in ("add_index", "remove_index")]


async def test_the_migrated_indexes_are_the_models_indexes(database_url: str) -> None:
    url = as_owner(database_url)  # migrations run as the schema's owner
    await asyncio.to_thread(upgrade, url)
    assert await _index_differences(url) == []


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own: data migrations step down and up on their own rows only."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}"
        return
    if not PG_ADMIN_URL:
        pytest.skip("TIDINGS_TEST_POSTGRES_URL is not set")
    with fresh_database("tidings_migrations") as database:
        yield database.owner_url  # one role for all: the owner migrates and reads


async def test_the_latest_migrations_step_down_and_up(empty_database_url: str) -> None:
    # The last three: a change often comes as more than one migration.
    url = empty_database_url
    config = alembic_config(url)
    await asyncio.to_thread(upgrade, url)
    await asyncio.to_thread(command.downgrade, config, "-3")
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _index_differences(url) == []


async def test_a_database_at_the_head_is_not_handed_to_alembic_again(
        empty_database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = empty_database_url
    assert await asyncio.to_thread(stored_revision, url) is None  # nothing there yet
    await asyncio.to_thread(upgrade, url)
    assert await asyncio.to_thread(stored_revision, url) == head_revision()
    assert head_revision() is not None

    handed: list[str] = []
    real_upgrade = command.upgrade
    monkeypatch.setattr(command, "upgrade",
                        lambda config, revision: handed.append(revision)
                        or real_upgrade(config, revision))
    await asyncio.to_thread(upgrade, url)
    assert handed == []  # at the head: the version row said so
    await asyncio.to_thread(command.downgrade, alembic_config(url), "-1")
    await asyncio.to_thread(upgrade, url)
    assert handed == ["head"]  # one behind: Alembic brings it up
    assert await asyncio.to_thread(stored_revision, url) == head_revision()


def test_a_version_that_cannot_be_read_leaves_the_decision_to_alembic(tmp_path: Path) -> None:
    garbage = tmp_path / "not-a-database.db"
    garbage.write_bytes(b"this is not SQLite" * 100)
    assert not _at_head(f"sqlite+aiosqlite:///{garbage}")
    assert not _at_head("postgresql+asyncpg://nobody@127.0.0.1:1/none")


# --------------------------------------------------------------------------- 0013: roles

@pytest.mark.postgres
async def test_the_app_role_finds_the_schema_up_to_date_and_changes_nothing(
        postgres_url: str) -> None:
    """``serve`` and ``worker`` migrate at start: as the app role, once the owner did."""
    await asyncio.to_thread(upgrade, as_owner(postgres_url))
    await asyncio.to_thread(upgrade, postgres_url)  # the app role: nothing to do, no error
    assert await _index_differences(postgres_url) == []


async def _role_state(url: str) -> tuple[str, bool, str]:
    """(schema version, member of tidings_cross_tenant, the messages policy's reads)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.scalar(text("SELECT version_num FROM alembic_version")),
                    await conn.scalar(text("SELECT pg_has_role('tidings_cross_tenant', "
                                           "'MEMBER')")),
                    await conn.scalar(text(
                        "SELECT qual FROM pg_policies WHERE tablename = 'messages'")))
    finally:
        await engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("may_create_roles", [False, True])
def test_0013_puts_the_migrating_role_in_the_cross_tenant_group_or_stops(
        may_create_roles: bool) -> None:
    """A single-role install upgrades: its role joins ``tidings_cross_tenant`` if it may,
    else the migration stops, names what a superuser must run, and changes nothing."""
    if not PG_ADMIN_URL:
        pytest.skip("TIDINGS_TEST_POSTGRES_URL is not set")
    role = "tidings_test_creator" if may_create_roles else "tidings_test_lone"
    with fresh_database("tidings_roles") as database:
        asyncio.run(run_as_admin(
            database.admin_dsn,
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
            f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS"
            f"{' CREATEROLE' if may_create_roles else ''}; END IF; END $$",
            f"REVOKE tidings_cross_tenant FROM {role}",  # as a fresh install has it
            f"ALTER DATABASE {database.owner_url.rsplit('/', 1)[1]} OWNER TO {role}"))
        url = database.owner_url.replace(f"://{OWNER_ROLE}@", f"://{role}@")
        upgrade(url, "0012")
        if may_create_roles:
            upgrade(url, "0013")  # 0013 itself, whatever later migrations add
        else:
            with pytest.raises(RuntimeError, match="CREATE ROLE tidings_runtime NOLOGIN"):
                upgrade(url, "0013")
        version, member, policy = asyncio.run(_role_state(url))
        if may_create_roles:  # and back: anyone setting '*system*' crosses tenants again
            command.downgrade(alembic_config(url), "0012")
            back = asyncio.run(_role_state(url))[2]
    assert (version, member) == (("0013", True) if may_create_roles else ("0012", False))
    assert ("pg_has_role" in policy) is may_create_roles
    if may_create_roles:
        assert "pg_has_role" not in back
        assert "'*system*'" in back


# --------------------------------------------------------------------------- 0009: numbers

NUMBERS = {"acc_one": "+12025550173", "acc_two": "support@acme.example"}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def _execute(url: str, sql: str, rows: list[dict[str, Any]]) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await set_tenant_setting(conn, SYSTEM)
            await conn.execute(text(sql), rows)
    finally:
        await engine.dispose()


async def _numbers_in_clear_at_0009(url: str) -> None:
    """Two accounts with a number each, stored as they were before 0010."""
    await asyncio.to_thread(upgrade, url, "0009")
    await _execute(url, "INSERT INTO accounts (id, name, status, webhook_secret_enc, "
                        "created_at, updated_at) VALUES (:id, :id, 'active', :secret, :now, :now)",
                   [{"id": tenant, "secret": b"x", "now": NOW} for tenant in NUMBERS])
    await _execute(url, "INSERT INTO phone_numbers (id, tenant_id, number, created_at) "
                        "VALUES (:id, :tenant, :number, :now)",
                   [{"id": f"num_{tenant}", "tenant": tenant, "number": number, "now": NOW}
                    for tenant, number in NUMBERS.items()])


async def test_the_migration_encrypts_numbers_stored_in_clear(
        empty_database_url: str, tmp_path: Path) -> None:
    url = empty_database_url
    await _numbers_in_clear_at_0009(url)
    # Alembic alone cannot reach the key store: it stops rather than keep numbers in clear.
    with pytest.raises(RuntimeError, match="tidings migrate"):
        await asyncio.to_thread(upgrade, url)

    settings = Settings(data_dir=tmp_path / "data", database_url=url, smpp_port=0)
    await asyncio.to_thread(migrate, settings)
    assert await _index_differences(url) == []
    rt = await open_runtime(settings, start_background=False)
    try:
        async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
            rows = (await session.execute(select(PhoneNumber.__table__))).all()
        dump = b"|".join(str(v).encode() if not isinstance(v, bytes) else v
                         for row in rows for v in row)
        for number in NUMBERS.values():
            assert number.encode() not in dump
            assert number.lstrip("+").encode() not in dump
        # The account reads its number; an inbound message finds its owner.
        for tenant, number in NUMBERS.items():
            keys = await rt.vault.keys_for(tenant)
            async with rt.db.transaction(tenant=tenant, write=False) as session:
                [row] = await list_numbers(session, tenant=tenant)
            assert keys.decrypt(row.number_enc, field=NUMBER_FIELD) == number
        created = await receive_inbound(rt, sender="+14155550100", to=NUMBERS["acc_one"],
                                        body="Hi", channel="sms", actor=TEST_ACTOR)
        assert created.row["tenant_id"] == "acc_one"
        # Uniqueness holds across tenants, on the new index.
        with pytest.raises(Conflict):
            async with rt.db.transaction(tenant="acc_two") as session:
                await do_assign_number(session, keys=await rt.vault.keys_for("acc_two"),
                                       platform=await rt.vault.platform_keys(),
                                       number=NUMBERS["acc_one"], actor=TEST_ACTOR,
                                       now=NOW)
    finally:
        await close_runtime(rt)

    # And back: the step down decrypts them again.
    config = alembic_config(url, settings)
    await asyncio.to_thread(command.downgrade, config, "0009")
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await set_tenant_setting(conn, SYSTEM)
            back = dict((await conn.execute(text(
                "SELECT tenant_id, number FROM phone_numbers"))).all())
    finally:
        await engine.dispose()
    assert back == NUMBERS
