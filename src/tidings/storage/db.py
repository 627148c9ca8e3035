"""Engines, the declarative base and the unit of work.

The unit of work (``Database.transaction``) owns the transaction: services
receive its session, may flush, and never commit. On PostgreSQL it also sets
the tenant for row-level security, the second wall behind the scoped helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import BigInteger, Integer, MetaData, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from tidings.storage.sqlite_checkpoints import BACKSTOP_PAGES, WalCheckpointer, truncate_wal
from tidings.storage.sqlite_inline import InlineDbapi

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_MMAP_BYTES = 256 * 1024 * 1024  # address space, not memory: the OS's page cache
SQLITE_CACHE_KIB = 16 * 1024  # per connection (SQLite's default is 2 MiB)
SYSTEM = "*system*"  # tenant marker for work that spans tenants (workers, key look-up)
# PostgreSQL: the group role whose members alone may act as SYSTEM (migration 0013).
CROSS_TENANT_ROLE = "tidings_cross_tenant"
# What a service given a unit of work runs its statements on: an ORM session, or a
# plain connection (``Database.core``) where only Core statements are used.
SessionOrConnection = AsyncSession | AsyncConnection


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# JSON columns through orjson, not the standard library's json: every send stores a
# job payload (its request id) and an audit event's fields, and a worker reads them
# back; json.dumps and json.loads cost several times as much per row.
_JSON_CODEC: dict[str, Any] = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


def _make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, module=InlineDbapi(), connect_args={"timeout": 30},
                                     **_JSON_CODEC)
        _tune_sqlite(engine)
        return engine
    # No pre-ping: it costs a round trip on every checkout. A connection found dead
    # fails its transaction, SQLAlchemy then drops the whole pool, and the caller
    # (a request answering 5xx, a worker retrying its batch) goes on with fresh ones.
    return create_async_engine(url, pool_size=10, max_overflow=10, **_JSON_CODEC)


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # a 2xx means on disk
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Pages read through a memory map rather than a read() call each, and a larger
        # page cache per connection: 6-8 % less CPU in SQLite on the send path's writes
        # (a measure of 30,000 messages' inserts and updates).
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        # Checkpoints run on a thread (``start_checkpoints``); a writer checkpoints
        # within its commit only if that thread falls far behind.
        cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """The engines and session factories; built by ``create_app``, never at import.

    On PostgreSQL, tenant work connects with ``url`` (a role that row-level security
    keeps to the tenant it sets) and ``tenant=SYSTEM`` work with ``system_url`` (a
    member of ``tidings_cross_tenant``, the only role the policies let cross tenants).
    Without ``system_url`` one role does both: a single-role setup, in which tenant
    isolation rests on the application alone. SQLite has no roles: one engine.
    """

    def __init__(self, url: str, *, system_url: str | None = None) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self.is_sqlite = url.startswith("sqlite")
        self.single_role = self.is_sqlite or not system_url or system_url == url
        # The cross-tenant engine; the tenant engine itself in a single-role setup.
        self.system_engine = self.engine if self.single_role else _make_engine(system_url or url)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._system_sessions = (
            self._sessions if self.single_role
            else async_sessionmaker(self.system_engine, expire_on_commit=False))
        # SQLite allows one writer; queueing writers here beats its busy-wait loop,
        # and so does the file lock between processes on one file.
        self._write_lock = WriterQueue() if self.is_sqlite else None
        self._file_lock = FileWriteLock.beside(url) if self.is_sqlite else None
        self._checkpointer: WalCheckpointer | None = None

    @asynccontextmanager
    async def transaction(self, *, tenant: str, write: bool = True,
                          urgent: bool = False) -> AsyncIterator[AsyncSession]:
        """A session in one transaction, committed on success, scoped to ``tenant``.

        ``urgent``: a peer waits for this commit (an SMSC for the answer to a
        ``deliver_sm``, holding a slot of its window meanwhile); on SQLite it goes
        before the writers already queued that are not urgent.
        """
        async with self._writer_turn(write, urgent) as sqlite_begin, \
                self._session(tenant, sqlite_begin) as session:
            yield session

    @asynccontextmanager
    async def erasing(self, *, tenant: str, forget: bool = True
                      ) -> AsyncIterator[AsyncSession]:
        """``transaction`` for erasing personal data: on SQLite what its statements
        delete or overwrite is zeroed in the pages (``secure_delete``), not left in
        their free space, and, with ``forget``, the log is emptied after
        (``forget_old_pages``; a caller erasing in many transactions does it once)."""
        async with self.transaction(tenant=tenant) as session:
            if self.is_sqlite:
                await session.execute(text("PRAGMA secure_delete=ON"))
            yield session
            if self.is_sqlite:  # the connection goes back to the pool as it came
                await session.execute(text("PRAGMA secure_delete=OFF"))
        if self.is_sqlite and forget:
            await self.forget_old_pages()

    async def forget_old_pages(self) -> bool:
        """On SQLite, copy the log into the database and truncate it, so that no page
        image from before an erasure stays in the ``-wal`` file; on a thread (it waits
        for readers). False when readers kept it from finishing: the log then resets
        at a later checkpoint. PostgreSQL vacuums its dead rows itself."""
        path = sqlite_file(self.url)
        return path is not None and await asyncio.to_thread(truncate_wal, path)

    @asynccontextmanager
    async def core(self, *, tenant: str, write: bool = True,
                   urgent: bool = False) -> AsyncIterator[AsyncConnection]:
        """``transaction`` for Core statements only: a connection, without an ORM session.

        The workers' paths use it; a session costs about a quarter of a millisecond
        more per transaction, and they run hundreds of transactions a second.
        """
        async with self._writer_turn(write, urgent) as sqlite_begin, \
                self.engine_for(tenant).connect() as conn:
            if self.is_sqlite:
                conn = await conn.execution_options(sqlite_begin=sqlite_begin)
            async with conn.begin():
                if not self.is_sqlite:
                    await set_tenant_setting(conn, tenant)
                yield conn

    def engine_for(self, tenant: str) -> AsyncEngine:
        """The cross-tenant engine for ``SYSTEM``, the tenant engine for a tenant."""
        return self.system_engine if tenant == SYSTEM else self.engine

    @asynccontextmanager
    async def _writer_turn(self, write: bool, urgent: bool) -> AsyncIterator[str]:
        """On SQLite, a writer waits for the write lock; the ``BEGIN`` mode to use."""
        if self._write_lock is not None and write:
            async with self._write_lock.turn(urgent=urgent), \
                    self._file_lock or contextlib.nullcontext():
                yield "IMMEDIATE"
        else:
            yield "DEFERRED"

    @asynccontextmanager
    async def _session(self, tenant: str, sqlite_begin: str) -> AsyncIterator[AsyncSession]:
        sessions = self._system_sessions if tenant == SYSTEM else self._sessions
        async with sessions() as session:
            if self.is_sqlite:
                conn = await session.connection(execution_options={"sqlite_begin": sqlite_begin})
            else:
                conn = await session.connection()
                await set_tenant_setting(conn, tenant)
            del conn
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def check_roles(self) -> None:
        """On PostgreSQL, refuse roles that would break isolation or the system's work.

        A cross-tenant engine whose role is not in ``tidings_cross_tenant`` would find
        no API key and no job; a tenant role that is in it could read every tenant.
        """
        if self.is_sqlite:
            return
        if not await _crosses_tenants(self.system_engine):
            raise RuntimeError(
                f"the role of TIDINGS_SYSTEM_DATABASE_URL (or, without it, of "
                f"TIDINGS_DATABASE_URL) is not a member of {CROSS_TENANT_ROLE}: work across "
                "tenants would see no rows (docs/operations.md, PostgreSQL roles)")
        if not self.single_role and await _crosses_tenants(self.engine):
            raise RuntimeError(
                f"the role of TIDINGS_DATABASE_URL is a member of {CROSS_TENANT_ROLE}: it "
                "could read every tenant; give it tidings_runtime only "
                "(docs/operations.md, PostgreSQL roles)")

    def start_checkpoints(self) -> None:
        """On a SQLite file, copy the WAL back on a thread of its own (see
        ``sqlite_checkpoints``); until then writers do it in their commits."""
        path = sqlite_file(self.url)
        if path is not None and self._checkpointer is None:
            self._checkpointer = WalCheckpointer(path)
            self._checkpointer.start()

    async def dispose(self) -> None:
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None
        await self.engine.dispose()
        if self.system_engine is not self.engine:
            await self.system_engine.dispose()
        if self._file_lock is not None:
            self._file_lock.close()


class WriterQueue:
    """The writers of one process, one at a time: urgent ones first, else in order.

    Under load the batch API's group commit, the dispatcher and the claims keep
    the queue full. A receipt's transaction queued behind them made the SMSC wait
    for its ``deliver_sm_resp`` with its window full, so receipts came in at the
    pace of the queue and fell seconds behind the submits.
    """

    def __init__(self) -> None:
        self._held = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._others: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def turn(self, *, urgent: bool = False) -> AsyncIterator[None]:
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
        if not self._held:
            self._held = True
            return
        queue = self._urgent if urgent else self._others
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the turn came as we were cancelled: pass it on
            else:  # still queued, unless a release already skipped it
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)
            raise

    def _release(self) -> None:
        for queue in (self._urgent, self._others):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the turn passes on: still held
                    return
        self._held = False


class FileWriteLock:
    """An exclusive ``flock`` on ``<database>.write-lock``, taken around each write.

    Processes writing one SQLite file (``tidings serve`` and a webhook worker) then
    queue in the kernel and the next one starts the moment the last one commits.
    Without it they meet in SQLite's busy handler, which sleeps 1 to 100 ms between
    tries: the lock is idle while writers sleep. The kernel drops the lock of a
    process that dies.
    """

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    @classmethod
    def beside(cls, database_url: str) -> FileWriteLock | None:
        """The lock of a SQLite file; None for an in-memory database."""
        path = sqlite_file(database_url)
        return None if path is None else cls(Path(f"{path}.write-lock"))

    async def acquire(self) -> None:
        try:  # free (the usual case): one system call, no thread
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waiting = asyncio.get_running_loop().run_in_executor(
            None, fcntl.flock, self._fd, fcntl.LOCK_EX)
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # The thread will get the lock anyway: give it back then, or every
            # writer of every process would wait for it forever.
            waiting.add_done_callback(self._release_when_taken)
            raise

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *_exc: object) -> None:
        self.release()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _release_when_taken(self, waiting: asyncio.Future[None]) -> None:
        if not waiting.cancelled() and waiting.exception() is None:
            self.release()


_CROSSES_TENANTS = text("SELECT pg_has_role(oid, 'MEMBER') FROM pg_roles WHERE rolname = :role")


async def _crosses_tenants(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return bool(await conn.scalar(_CROSSES_TENANTS, {"role": CROSS_TENANT_ROLE}))


# Built once: parsing a text clause is a visible share of a short transaction's cost.
_SET_TENANT = text("SELECT set_config('tidings.tenant_id', :tenant, true)")


async def set_tenant_setting(conn: Any, tenant: str) -> None:
    """Tell PostgreSQL's row-level security policies who is acting."""
    await conn.execute(_SET_TENANT, {"tenant": tenant})


# An auto-increment 64-bit key; SQLite only auto-increments INTEGER PRIMARY KEY.
BigIntPK = BigInteger().with_variant(Integer, "sqlite")


def sqlite_file(database_url: str) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database (or not SQLite)."""
    if not database_url.startswith("sqlite"):
        return None
    database = make_url(database_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)
