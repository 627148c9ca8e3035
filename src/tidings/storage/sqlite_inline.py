"""SQLite for the async engine, run on the event loop's own thread.

aiosqlite runs every call (cursor, execute, fetch, commit) on a thread of its
own and hands the answer back through the event loop, so a transaction of five
statements waits for the loop about fifteen times. Under load each of those
waits is a whole turn of the loop (parsing a batch request, encoding PDUs), and
SQLite's one write lock stays held meanwhile: in the SMPP benchmark the write
lock was held for 27 ms on average by transactions whose statements took a few.

Here the same calls run at once on the caller's thread: a transaction runs
from ``BEGIN`` to ``COMMIT`` without giving the loop away, except where the code
itself awaits something else. SQLite's statements take microseconds to a few
milliseconds, and the commit's fsync blocks the loop for as long as the disk
takes (about 0.2 ms on an SSD).

The catch is SQLite's busy handler, which would now sleep on the loop's thread:
writers must queue for the write lock before they ``BEGIN`` (``Database``'s
write lock and file lock do that), so that SQLite never has to wait for a
writer of this process.

SQLAlchemy's own aiosqlite adapter is kept (its cursor and connection wrappers,
its error handling); only the connection it wraps is replaced.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_dbapi,
)


class InlineCursor:
    """An aiosqlite-shaped cursor whose coroutines finish without suspending."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    async def __aiter__(self) -> AsyncIterator[Any]:
        for row in self._cursor:
            yield row


class InlineConnection:
    """An aiosqlite-shaped connection over a plain ``sqlite3`` one."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn: sqlite3.Connection | None = connection

    @property
    def _connection(self) -> sqlite3.Connection | None:  # what SQLAlchemy checks for "open"
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._open().isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._open().cursor())

    async def commit(self) -> None:
        self._open().commit()

    async def rollback(self) -> None:
        self._open().rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._open().create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        connection, self._conn = self._conn, None
        if connection is not None:
            connection.close()

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("no active connection")
        return self._conn


class InlineDbapi(AsyncAdapt_aiosqlite_dbapi):
    """The aiosqlite dialect's DBAPI, connecting without aiosqlite's thread."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *args: Any, **kwargs: Any) -> AsyncAdapt_aiosqlite_connection:
        # Autocommit mode: the engine emits BEGIN itself (see ``tidings.storage.db``).
        kwargs["isolation_level"] = None
        kwargs.setdefault("check_same_thread", False)  # engines outlive a loop in tests
        return AsyncAdapt_aiosqlite_connection(self, InlineConnection(  # type: ignore[arg-type]
            sqlite3.connect(*args, **kwargs)))
