"""The database roles a runtime connects with: tenant work, work across tenants,
migrations (docs/operations.md, PostgreSQL roles). SQLite has none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from structlog.testing import capture_logs

from tests.conftest import make_tenant
from tests.pg import OWNER_ROLE, SYSTEM_ROLE, as_owner, as_role, role_settings
from tidings.accounts.models import Account
from tidings.core.settings import Settings
from tidings.runtime import close_runtime, open_runtime
from tidings.storage.db import SYSTEM

PG = "postgresql+asyncpg://tidings@db.example:5432/tidings"


async def test_a_single_role_setup_still_works_and_says_isolation_rests_on_the_app(
        database_url: str, tmp_path: Path) -> None:
    # One role for everything, as before: on PostgreSQL the schema's owner.
    settings = Settings(data_dir=tmp_path / "data", database_url=as_owner(database_url),
                        smpp_port=0)
    with capture_logs() as logged:
        rt = await open_runtime(settings, start_background=False)
    try:
        solo = (await make_tenant(rt, "Solo")).id
        async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
            found = await session.scalar(select(Account.id).where(Account.id == solo))
        assert found == solo
    finally:
        await close_runtime(rt)
    warnings = [e for e in logged if e["event"] == "database_single_role"]
    if rt.db.is_sqlite:
        assert warnings == []  # no roles on SQLite: nothing to warn about
    else:
        assert [e["log_level"] for e in warnings] == ["warning"]
        assert "TIDINGS_SYSTEM_DATABASE_URL" in warnings[0]["detail"]


async def test_the_three_roles_start_without_the_warning(
        database_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, smpp_port=0,
                        **role_settings(database_url))
    with capture_logs() as logged:
        rt = await open_runtime(settings, start_background=False)
    await close_runtime(rt)
    assert [e for e in logged if e["event"] == "database_single_role"] == []
    assert rt.db.single_role == rt.db.is_sqlite


@pytest.mark.postgres
@pytest.mark.parametrize(("tenant_role", "system_role", "refusal"), [
    # The app role alone: it cannot see across tenants, so no key or job would be found.
    ("app", None, "not a member of tidings_cross_tenant"),
    # A cross-tenant role doing tenant work would leave tenants open to each other.
    ("system", "owner", "TIDINGS_DATABASE_URL is a member of tidings_cross_tenant"),
])
async def test_roles_that_break_isolation_or_the_system_work_are_refused_at_start(
        postgres_url: str, tmp_path: Path, tenant_role: str, system_role: str | None,
        refusal: str) -> None:
    roles = {"app": postgres_url, "system": as_role(postgres_url, SYSTEM_ROLE),
             "owner": as_role(postgres_url, OWNER_ROLE)}
    settings = Settings(data_dir=tmp_path / "data", database_url=roles[tenant_role],
                        system_database_url=roles[system_role] if system_role else "",
                        migrate_database_url=roles["owner"], smpp_port=0)
    with pytest.raises(RuntimeError, match=refusal):
        await open_runtime(settings, start_background=False)


@pytest.mark.parametrize(("given", "complaint"), [
    ({"system_database_url": PG}, "TIDINGS_SYSTEM_DATABASE_URL must name the database"),
    ({"migrate_database_url": PG}, "TIDINGS_MIGRATE_DATABASE_URL must name the database"),
    ({"database_url": PG, "system_database_url": "sqlite+aiosqlite:///x.db"},
     "TIDINGS_SYSTEM_DATABASE_URL must be a postgresql:// URL"),
    ({"database_url": PG, "system_database_url": "not a url"}, "must be a postgresql://"),
    ({"database_url": PG, "system_database_url": "postgresql+asyncpg://w@db.example:x/t"},
     "must be a postgresql://"),
    ({"database_url": PG, "migrate_database_url": "postgresql+asyncpg://o@db.example"},
     "must be a postgresql://"),
    ({"database_url": PG, "system_database_url": "postgresql+asyncpg://w@elsewhere/tidings"},
     "same host, port and database"),
    ({"database_url": PG, "migrate_database_url": "postgresql+asyncpg://o@db.example/other"},
     "same host, port and database"),
])
def test_role_urls_that_are_not_the_same_postgresql_database_are_refused(
        given: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        Settings(**given)


def test_each_kind_of_work_finds_its_url() -> None:
    alone = Settings(database_url=PG)
    assert (alone.resolved_system_database_url(), alone.resolved_migrate_database_url()) == (
        PG, PG)
    system = PG.replace("tidings@", "tidings_system@")
    owner = PG.replace("tidings@", "tidings_owner@")
    split = Settings(database_url=PG, system_database_url=system, migrate_database_url=owner)
    assert (split.resolved_system_database_url(), split.resolved_migrate_database_url()) == (
        system, owner)
