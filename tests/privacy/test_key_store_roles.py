"""PSE-2: on PostgreSQL the key store is a database of its own, which the application's
roles (tenant work and cross-tenant work) cannot open; only the key store's role can."""

from __future__ import annotations

import asyncpg
import pytest

from tests.pg import APP_ROLE, SYSTEM_ROLE

pytestmark = pytest.mark.postgres


def dsn_as(url: str, role: str) -> str:
    rest = url.split("://", 1)[1].split("@", 1)[1]
    return f"postgresql://{role}@{rest}"


@pytest.mark.parametrize("role", [APP_ROLE, SYSTEM_ROLE])
async def test_PSE_2_the_applications_roles_cannot_read_the_key_store(
        postgres_keystore_url: str, role: str) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await asyncpg.connect(dsn_as(postgres_keystore_url, role))


async def test_PSE_2_the_key_stores_role_reads_it(postgres_keystore_url: str) -> None:
    conn = await asyncpg.connect(postgres_keystore_url.replace("+asyncpg", ""))
    try:
        assert await conn.fetchval("SELECT current_user") == "tidings_test_keys"
    finally:
        await conn.close()
