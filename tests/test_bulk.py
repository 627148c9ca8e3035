"""Bulk statements: the SQLite fast path writes what SQLAlchemy's own path writes.

Each test runs on a real SQLite file and, when configured, on PostgreSQL (where
``execute_many`` is SQLAlchemy's own path).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tests.pg import as_owner
from tidings.storage import bulk
from tidings.storage.bulk import execute_many, insert_many
from tidings.storage.sqltypes import Ciphertext, UTCDateTime

METADATA = MetaData()
THINGS = Table(
    "bulk_things", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(20), nullable=False, unique=True),
    Column("at", UTCDateTime, nullable=True),
    Column("secret", Ciphertext, nullable=True),
    Column("payload", JSON(none_as_null=True), nullable=True),
    Column("doc", JSON, nullable=True),  # None is stored as the JSON text 'null' here
    Column("flag", Boolean, nullable=False),
    Column("tries", Integer, nullable=False, default=0),  # a scalar default
)
STAMPED = Table(  # a default computed in Python: SQLAlchemy's own path
    "bulk_stamped", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("label", String(20), default=lambda: "made-" + "by-default"),
)
RENAME = (update(THINGS).where(THINGS.c.id == bindparam("thing_id"))
          .values(name=bindparam("new_name"), at=bindparam("new_at")))
NOW = datetime(2026, 12, 1, 15, 37, 20, 123456, tzinfo=UTC)


def _rows() -> list[dict[str, Any]]:
    other_zone = NOW.astimezone(timezone(timedelta(hours=2)))
    return [{"id": i, "name": f"thing {i}", "at": [NOW, None, other_zone, NOW][i % 4],
             "secret": bytes([i, 0, 255]) if i % 2 else None,
             "payload": {"n": i, "nested": [1, None]} if i % 3 else None,
             "doc": None if i % 2 else ["x", i], "flag": i % 2 == 0}
            for i in range(12)]


@asynccontextmanager
async def _tables(url: str) -> AsyncIterator[AsyncEngine]:
    made = create_async_engine(url)
    async with made.begin() as conn:
        await conn.run_sync(METADATA.drop_all)
        await conn.run_sync(METADATA.create_all)
    try:
        yield made
    finally:
        async with made.begin() as conn:
            await conn.run_sync(METADATA.drop_all)
        await made.dispose()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    async with _tables(as_owner(database_url)) as made:  # it makes its own tables
        yield made


async def _stored(conn: AsyncConnection, table: Table) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in await conn.execute(select(table).order_by(table.c.id))]


async def _as_sqlalchemy_writes(engine: AsyncEngine, rows: list[dict[str, Any]]
                                ) -> list[tuple[Any, ...]]:
    async with engine.begin() as conn:
        await conn.execute(insert(THINGS), rows)
        stored = await _stored(conn, THINGS)
        await conn.execute(THINGS.delete())
    return stored


async def test_insert_many_stores_what_sqlalchemy_stores(engine: AsyncEngine) -> None:
    expected = await _as_sqlalchemy_writes(engine, _rows())
    async with engine.begin() as conn:
        await insert_many(conn, THINGS, _rows())
        assert await _stored(conn, THINGS) == expected
    assert [row[7] for row in expected] == [0] * 12, "the scalar default filled in"
    assert expected[0][4] is None
    assert expected[1][5] is None


async def test_the_raw_values_on_sqlite_are_those_of_sqlalchemy(tmp_path: Path) -> None:
    """Byte for byte the same text, blobs and JSON in the file, not only the same values
    read back: rows written before the fast path must compare and sort alike."""
    raw = "SELECT id, name, at, secret, payload, doc, flag, tries FROM bulk_things ORDER BY id"
    async with _tables(f"sqlite+aiosqlite:///{tmp_path / 'raw.db'}") as engine, \
            engine.begin() as conn:
        await conn.execute(insert(THINGS), _rows())
        by_sqlalchemy = (await conn.exec_driver_sql(raw)).all()
        await conn.execute(THINGS.delete())
        await insert_many(conn, THINGS, _rows())
        assert (await conn.exec_driver_sql(raw)).all() == by_sqlalchemy
    taken = bulk._plan(bulk._inserts[THINGS], engine.dialect, tuple(_rows()[0]))
    assert taken is not None, "the rows took the fast path"
    assert taken.constants == {"tries": 0}


async def test_execute_many_updates_by_bound_names(engine: AsyncEngine) -> None:
    later = NOW + timedelta(seconds=1)
    async with engine.begin() as conn:
        await insert_many(conn, THINGS, _rows())
        await execute_many(conn, RENAME, [{"thing_id": i, "new_name": f"renamed {i}",
                                           "new_at": later} for i in (1, 5)])
        changed = (await conn.execute(select(THINGS.c.id, THINGS.c.name, THINGS.c.at)
                                      .where(THINGS.c.name.like("renamed%"))
                                      .order_by(THINGS.c.id))).all()
    assert [tuple(row) for row in changed] == [(1, "renamed 1", later), (5, "renamed 5", later)]


async def test_a_default_computed_in_python_takes_sqlalchemys_path(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await insert_many(conn, STAMPED, [{"id": 1}])
        await insert_many(conn, STAMPED, [{"id": 2, "label": "given"}])
        assert await _stored(conn, STAMPED) == [(1, "made-by-default"), (2, "given")]
    assert bulk._plan(insert(STAMPED), engine.dialect, ("id",)) is None


async def test_a_constraint_violation_raises_sqlalchemys_error_and_writes_nothing(
        engine: AsyncEngine) -> None:
    clash = [*_rows()[:3], dict(_rows()[0], id=99)]  # a name taken twice
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await insert_many(conn, THINGS, clash)
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(THINGS)) == 0


async def test_a_row_without_a_key_of_the_first_is_refused_and_writes_nothing(
        engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        with pytest.raises((KeyError, StatementError)):
            await insert_many(conn, THINGS, [_rows()[0], {"id": 1, "name": "short"}])
        await conn.rollback()
        assert await conn.scalar(select(func.count()).select_from(THINGS)) == 0


async def test_no_rows_is_no_statement(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await insert_many(conn, THINGS, [])
        await execute_many(conn, RENAME, [])
        assert await _stored(conn, THINGS) == []
