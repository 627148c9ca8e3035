"""The migrations build the indexes the models describe, and the latest one steps down
and up again. On a real SQLite file and, when configured, on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

import tidings.app  # noqa: F401 - every model registered on Base.metadata
from tidings.db import Base
from tidings.migrations.run import alembic_config, upgrade


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
    await asyncio.to_thread(upgrade, database_url)
    assert await _index_differences(database_url) == []


async def test_the_latest_migration_steps_down_and_up(database_url: str) -> None:
    config = alembic_config(database_url)
    await asyncio.to_thread(upgrade, database_url)
    await asyncio.to_thread(command.downgrade, config, "-1")
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _index_differences(database_url) == []
