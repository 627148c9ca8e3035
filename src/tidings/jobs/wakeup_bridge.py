"""Carry worker nudges between processes with PostgreSQL ``LISTEN``/``NOTIFY``.

When the API and the workers run in separate processes, a message accepted by
one API process must wake a worker in another at once, not at its next poll.
Each process publishes the kinds it nudges on one channel and listens to the
others. Nudges are coalesced (one ``NOTIFY`` per kind per round trip, however
many requests asked for it) and carry only a job kind, never data. Losing one
(a dropped connection, a restart) costs at most one poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import asyncpg
from sqlalchemy.engine import make_url

from tidings.core.logs import get_logger
from tidings.jobs.wakeups import Wakeups

CHANNEL = "tidings_wakeups"
RECONNECT_SECONDS = 1.0
log = get_logger("tidings.wakeups")


def asyncpg_dsn(database_url: str) -> str:
    """The plain ``postgresql://`` DSN asyncpg takes, from a SQLAlchemy URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


class PostgresWakeupBridge:
    def __init__(self, dsn: str, wakeups: Wakeups, kinds: Iterable[str]) -> None:
        self._dsn, self._wakeups, self._kinds = dsn, wakeups, frozenset(kinds)
        self._pending: set[str] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._sender: asyncpg.Connection | None = None
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen (raising if PostgreSQL cannot be reached), then publish this process's nudges."""
        listening = await self._listen()
        self._listener = asyncio.create_task(self._keep_listening(listening))
        self._wakeups.publisher = self.publish

    async def stop(self) -> None:
        self._wakeups.publisher = None
        for task in (self._listener, self._flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._sender is not None:
            await _close(self._sender)
            self._sender = None

    def publish(self, kind: str) -> None:
        """Queue a nudge for the other processes; sent on the next round trip."""
        if kind not in self._kinds:
            return
        self._pending.add(kind)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            kinds, self._pending = sorted(self._pending), set()
            try:
                sender = await self._sender_connection()
                await sender.executemany("SELECT pg_notify($1, $2)",
                                         [(CHANNEL, kind) for kind in kinds])
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.warning("wakeup_publish_failed")  # the others will poll instead
                if self._sender is not None:
                    await _close(self._sender)
                self._sender = None
                return

    async def _sender_connection(self) -> asyncpg.Connection:
        if self._sender is None or self._sender.is_closed():
            self._sender = await asyncpg.connect(self._dsn)
        return self._sender

    async def _listen(self) -> tuple[asyncpg.Connection, asyncio.Event]:
        conn = await asyncpg.connect(self._dsn)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(CHANNEL, self._on_notification)
        return conn, lost

    async def _keep_listening(self, listening: tuple[asyncpg.Connection, asyncio.Event]) -> None:
        conn, lost = listening
        while True:
            try:
                await lost.wait()
            finally:
                await _close(conn)
            log.warning("wakeup_listener_lost")
            while True:
                await asyncio.sleep(RECONNECT_SECONDS)
                try:
                    conn, lost = await self._listen()
                    break
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    continue

    def _on_notification(self, _conn: object, pid: int, _channel: str, payload: object) -> None:
        own = self._sender.get_server_pid() if self._sender is not None else None
        if isinstance(payload, str) and payload in self._kinds and pid != own:
            self._wakeups.wake_local(payload)  # (our own nudges woke us already)


async def _close(conn: asyncpg.Connection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), timeout=2)
