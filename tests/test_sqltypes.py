"""UTCDateTime and Ciphertext on a real SQLite file (and PostgreSQL when configured)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import create_async_engine

from tests.pg import as_owner
from tidings.storage.db import SYSTEM, Database
from tidings.storage.sqltypes import Ciphertext, UTCDateTime

METADATA = MetaData()
STAMPS = Table("stamps", METADATA, Column("id", Integer, primary_key=True),
               Column("at", UTCDateTime))
BLOBS = Table("blobs", METADATA, Column("id", Integer, primary_key=True),
              Column("data", Ciphertext))
VALUES = [
    datetime(2026, 12, 1, 15, 37, 20, 123456, tzinfo=UTC),
    datetime(2026, 12, 1, 15, 37, 20, tzinfo=UTC),  # no microseconds
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(2026, 12, 1, 17, 0, tzinfo=timezone(timedelta(hours=2))),  # 15:00 UTC
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


async def test_values_come_back_as_the_same_instants_in_utc(database_url: str) -> None:
    engine = create_async_engine(as_owner(database_url))  # it makes its own tables
    try:
        async with engine.begin() as conn:
            await conn.run_sync(METADATA.create_all)
            await conn.execute(insert(STAMPS), [{"id": i, "at": v} for i, v in enumerate(VALUES)])
            back = (await conn.execute(select(STAMPS.c.at).order_by(STAMPS.c.id))).scalars()
            earlier = (await conn.execute(select(STAMPS.c.id).where(
                STAMPS.c.at < datetime(2026, 12, 1, 15, 30, tzinfo=UTC))
                .order_by(STAMPS.c.id))).scalars()
            assert list(earlier) == [2, 3]  # compared as instants, the +02:00 one too
        got = list(back)
        assert got == VALUES
        assert all(value.tzinfo is UTC for value in got)
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(METADATA.drop_all)
        await engine.dispose()


async def test_sqlite_text_is_the_dialects_own_format(tmp_path: Path) -> None:
    """The same text SQLAlchemy's SQLite DATETIME writes, so rows written before and
    after read and compare alike; a value with no fraction (as SQLite's own
    CURRENT_TIMESTAMP writes it) reads too."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'stamps.db'}")
    dialect_format = sqlite.DATETIME().bind_processor(sqlite.dialect())
    assert dialect_format is not None
    try:
        async with engine.begin() as conn:
            await conn.run_sync(METADATA.create_all)
            await conn.execute(insert(STAMPS), [{"id": i, "at": v} for i, v in enumerate(VALUES)])
            stored = (await conn.execute(text("SELECT at FROM stamps ORDER BY id"))).scalars()
            expected = [dialect_format(v.astimezone(UTC).replace(tzinfo=None)) for v in VALUES]
            assert list(stored) == expected
            await conn.execute(text("INSERT INTO stamps (id, at) VALUES (99, "
                                    "'2026-12-01 15:37:20')"))
            plain = (await conn.execute(select(STAMPS.c.at).where(STAMPS.c.id == 99))).scalar()
        assert plain == datetime(2026, 12, 1, 15, 37, 20, tzinfo=UTC)
    finally:
        await engine.dispose()


async def test_a_naive_datetime_is_refused(database_url: str) -> None:
    engine = create_async_engine(as_owner(database_url))  # it makes its own tables
    try:
        async with engine.begin() as conn:
            await conn.run_sync(METADATA.create_all)
        async with engine.connect() as conn:
            with pytest.raises(Exception, match="naive datetime") as refused:
                await conn.execute(insert(STAMPS), {"id": 1, "at": datetime(2026, 12, 1)})
            assert refused.type.__name__ in ("StatementError", "ValueError")
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(METADATA.drop_all)
        await engine.dispose()


CIPHERTEXTS = [b"", b"\x00", bytes(range(256)), b"\x00\xff" * 50_000, None]


async def test_ciphertexts_come_back_as_the_same_bytes(database_url: str) -> None:
    # Our engine (on SQLite, the inline driver), as the owner: it makes its own tables.
    db = Database(as_owner(database_url))
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(METADATA.create_all)
        async with db.core(tenant=SYSTEM) as conn:
            await conn.execute(insert(BLOBS), [{"id": i, "data": v}
                                               for i, v in enumerate(CIPHERTEXTS)])
        async with db.core(tenant=SYSTEM, write=False) as conn:
            back = list((await conn.execute(select(BLOBS.c.data).order_by(BLOBS.c.id)))
                        .scalars())
            if db.is_sqlite:  # stored as BLOBs, not as text
                kinds = (await conn.execute(text("SELECT typeof(data) FROM blobs ORDER BY id"))
                         ).scalars()
                assert list(kinds) == ["blob"] * 4 + ["null"]
        assert back == CIPHERTEXTS
        assert all(type(value) is bytes for value in back[:-1])
    finally:
        async with db.engine.begin() as conn:
            await conn.run_sync(METADATA.drop_all)
        await db.dispose()


async def test_rows_sharing_one_datetime_object_each_store_their_own_value(
        tmp_path: Path) -> None:
    """The text of the last value is reused only for that very object: NULLs, equal
    values and other values between rows of one bulk insert are each written right."""
    now = datetime(2026, 12, 1, 15, 37, 20, 123456, tzinfo=UTC)
    same_instant = now.astimezone(timezone(timedelta(hours=-5)))
    later = now + timedelta(microseconds=1)
    rows = [now, now, None, now, same_instant, later, None, later, now]
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'stamps.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(METADATA.create_all)
            await conn.execute(insert(STAMPS), [{"id": i, "at": v} for i, v in enumerate(rows)])
            stored = list((await conn.execute(
                text("SELECT at FROM stamps ORDER BY id"))).scalars())
    finally:
        await engine.dispose()
    expected_now, expected_later = "2026-12-01 15:37:20.123456", "2026-12-01 15:37:20.123457"
    assert stored == [expected_now, expected_now, None, expected_now, expected_now,
                      expected_later, None, expected_later, expected_now]


async def test_rows_read_with_a_shared_timestamp_each_get_their_own_value(
        tmp_path: Path) -> None:
    """The value of the last text read is reused only for equal text."""
    now = datetime(2026, 12, 1, 15, 37, 20, 123456, tzinfo=UTC)
    later = now + timedelta(microseconds=1)
    rows = [now, now, None, now, later, None, later, now]
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'stamps.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(METADATA.create_all)
            await conn.execute(insert(STAMPS), [{"id": i, "at": v} for i, v in enumerate(rows)])
            back = list((await conn.execute(select(STAMPS.c.at).order_by(STAMPS.c.id)))
                        .scalars())
    finally:
        await engine.dispose()
    assert back == rows
