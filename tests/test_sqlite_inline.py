"""SQLite statements run on the event loop's thread, through SQLAlchemy's own adapter.

The point of the driver is that a transaction does not hand the loop over
between its statements; the first test would fail on aiosqlite, where every
statement comes back through the loop. The others check that what the adapter
promises still holds: SQLAlchemy's errors, a session that goes on after one,
streaming, and a closed connection refusing work.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from tidings.storage.db import SYSTEM, Database
from tidings.storage.sqlite_inline import InlineConnection


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    made = Database(f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}")
    async with made.core(tenant=SYSTEM) as conn:
        await conn.execute(text("CREATE TABLE marks (name TEXT PRIMARY KEY)"))
    yield made
    await made.dispose()


async def names(db: Database) -> list[str]:
    async with db.core(tenant=SYSTEM, write=False) as conn:
        return list((await conn.execute(text("SELECT name FROM marks ORDER BY name")))
                    .scalars())


async def run(db: Database, *statements: str) -> None:
    """The statements in one write transaction."""
    async with db.core(tenant=SYSTEM) as conn:
        for statement in statements:
            await conn.execute(text(statement))


async def test_a_transaction_does_not_give_the_loop_away_between_statements(
        db: Database) -> None:
    other_work: list[str] = []
    asyncio.get_running_loop().call_soon(other_work.append, "ran")
    async with db.core(tenant=SYSTEM) as conn:
        for name in ("a", "b", "c"):
            await conn.execute(text("INSERT INTO marks VALUES (:n)"), {"n": name})
        count = (await conn.execute(text("SELECT count(*) FROM marks"))).scalar_one()
        assert other_work == [], "the loop ran other work in the middle of the transaction"
    await asyncio.sleep(0)
    assert other_work == ["ran"]
    assert count == 3


async def test_a_constraint_violation_is_sqlalchemys_error_and_changes_nothing(
        db: Database) -> None:
    with pytest.raises(IntegrityError):
        await run(db, "INSERT INTO marks VALUES ('a')", "INSERT INTO marks VALUES ('a')")
    assert await names(db) == []
    async with db.core(tenant=SYSTEM) as conn:  # the pool's connection is still good
        await conn.execute(text("INSERT INTO marks VALUES ('b')"))
    assert await names(db) == ["b"]


async def test_garbage_sql_is_an_operational_error(db: Database) -> None:
    with pytest.raises(OperationalError, match="syntax error"):
        await run(db, "INSERT INTO marks VALUES ('x')", "SELEKT garbage FROM")
    assert await names(db) == []


async def test_many_rows_in_one_statement_and_a_streamed_read(db: Database) -> None:
    async with db.core(tenant=SYSTEM) as conn:
        await conn.execute(text("INSERT INTO marks VALUES (:n)"),
                           [{"n": f"m{i:04d}"} for i in range(1000)])
    async with db.core(tenant=SYSTEM, write=False) as conn:
        streamed = [row[0] async for row in await conn.stream(
            text("SELECT name FROM marks ORDER BY name"))]
    assert streamed == [f"m{i:04d}" for i in range(1000)]


async def test_a_closed_connection_refuses_work(tmp_path: Path) -> None:
    connection = InlineConnection(sqlite3.connect(tmp_path / "closed.db"))
    await connection.close()
    with pytest.raises(ValueError, match="no active connection"):
        connection.cursor()
    with pytest.raises(ValueError, match="no active connection"):
        await connection.commit()
    await connection.close()  # twice is harmless
