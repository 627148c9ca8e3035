"""Nudges between processes over a real PostgreSQL ``LISTEN``/``NOTIFY``.

Two bridges on one database stand for two processes. Every wait below is bounded
far above what a nudge takes on loopback; a nudge that never comes fails the test.
The first two tests hold for the SQLite bridge (Unix sockets) as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tidings.jobs.wakeup_bridge import CHANNEL, PostgresWakeupBridge, asyncpg_dsn
from tidings.jobs.wakeup_sockets import SocketWakeupBridge, socket_directory
from tidings.jobs.wakeups import Wakeups
from tidings.messaging.service import EXPIRE_JOB
from tidings.messaging.status_changes import DISPATCH_JOB
from tidings.webhooks.service import DELIVER_JOB

KINDS = (DISPATCH_JOB, EXPIRE_JOB, DELIVER_JOB)
BOUND_SECONDS = 15.0


@pytest.fixture(params=["sockets", pytest.param("postgres", marks=pytest.mark.postgres)])
def bridge_place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Where the bridges meet: a socket directory, or a PostgreSQL DSN."""
    if request.param == "sockets":
        return "sockets", str(socket_directory(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"))
    return "postgres", asyncpg_dsn(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def any_pair(bridge_place: tuple[str, str]) -> AsyncIterator[tuple[Wakeups, Wakeups]]:
    """Two processes' wake-ups behind either kind of bridge."""
    kind, place = bridge_place
    first, second = Wakeups(), Wakeups()
    bridges = [SocketWakeupBridge(Path(place), w, KINDS) if kind == "sockets"
               else PostgresWakeupBridge(place, w, KINDS) for w in (first, second)]
    for bridge in bridges:
        await bridge.start()
    yield first, second
    for bridge in bridges:
        await bridge.stop()


@pytest.fixture
async def pair(postgres_url: str) -> AsyncIterator[tuple[Wakeups, Wakeups, str]]:
    """Two processes' wake-ups, each behind its own bridge; and the DSN."""
    dsn = asyncpg_dsn(postgres_url)
    first, second = Wakeups(), Wakeups()
    bridges = [PostgresWakeupBridge(dsn, w, KINDS) for w in (first, second)]
    for bridge in bridges:
        await bridge.start()
    yield first, second, dsn
    for bridge in bridges:
        await bridge.stop()


def waiting(wakeups: Wakeups, kind: str) -> asyncio.Task[None]:
    return asyncio.create_task(wakeups.wait(kind, timeout=600))


async def test_a_nudge_in_one_process_wakes_a_worker_in_the_other(
        any_pair: tuple[Wakeups, Wakeups]) -> None:
    first, second = any_pair
    worker = waiting(second, DISPATCH_JOB)
    await asyncio.sleep(0)
    first.notify(DISPATCH_JOB)
    await asyncio.wait_for(worker, BOUND_SECONDS)


async def test_a_local_wake_is_not_published(any_pair: tuple[Wakeups, Wakeups]) -> None:
    first, second = any_pair
    other_kind = waiting(second, EXPIRE_JOB)
    marker = waiting(second, DISPATCH_JOB)
    await asyncio.sleep(0)
    first.wake_local(EXPIRE_JOB)  # a nudge that came from elsewhere: not sent on
    first.notify(DISPATCH_JOB)
    await asyncio.wait_for(marker, BOUND_SECONDS)
    await asyncio.sleep(0.2)
    assert not other_kind.done()
    other_kind.cancel()


@pytest.mark.postgres
async def test_foreign_and_garbage_payloads_wake_nobody(
        pair: tuple[Wakeups, Wakeups, str]) -> None:
    _, second, dsn = pair
    expire = waiting(second, EXPIRE_JOB)
    marker = waiting(second, DELIVER_JOB)
    await asyncio.sleep(0)
    conn = await asyncpg.connect(dsn)
    try:  # one session: PostgreSQL delivers its notifications in order
        for payload in ("", "DROP TABLE jobs", "message.expire\x01", "x" * 7000,
                        "message.EXPIRE", DELIVER_JOB):
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
    finally:
        await conn.close()
    await asyncio.wait_for(marker, BOUND_SECONDS)
    assert not expire.done()
    expire.cancel()


@pytest.mark.postgres
async def test_the_listener_comes_back_after_its_connection_is_killed(
        pair: tuple[Wakeups, Wakeups, str]) -> None:
    first, second, dsn = pair
    conn = await asyncpg.connect(dsn)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN%'")
    finally:
        await conn.close()
    assert killed == 2
    worker = waiting(second, DISPATCH_JOB)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND_SECONDS
    while not worker.done():  # nudges sent while it reconnects are lost, by design
        assert loop.time() < deadline, "the listener did not come back"
        first.notify(DISPATCH_JOB)
        await asyncio.wait([worker], timeout=0.2)


@pytest.mark.postgres
async def test_publishing_survives_a_dead_connection(pair: tuple[Wakeups, Wakeups, str]) -> None:
    first, second, dsn = pair
    first.notify(DISPATCH_JOB)  # opens the sending connection
    await asyncio.sleep(0.5)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND query NOT LIKE 'LISTEN%'")
    finally:
        await conn.close()
    worker = waiting(second, DELIVER_JOB)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND_SECONDS
    while not worker.done():  # the first send may fail on the dead connection
        assert loop.time() < deadline, "publishing did not recover"
        first.notify(DELIVER_JOB)
        await asyncio.wait([worker], timeout=0.2)


def test_dsn_drops_the_driver_and_keeps_the_password() -> None:
    assert asyncpg_dsn("postgresql+asyncpg://app:s3cret@db.example:5433/tidings") == \
        "postgresql://app:s3cret@db.example:5433/tidings"
