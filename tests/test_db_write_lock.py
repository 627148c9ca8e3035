"""Writers of one SQLite file in several processes take turns on a file lock.

Two ``Database`` objects on one file hold two open file descriptions, so their
``flock``s exclude each other exactly as two processes' do; one test uses a real
second process as well. Every wait is bounded far above what a turn takes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from tidings.storage.db import SYSTEM, Database, FileWriteLock, WriterQueue

BOUND_SECONDS = 10.0


@pytest.fixture
async def url(tmp_path: Path) -> str:
    made = f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}"
    db = Database(made)
    async with db.core(tenant=SYSTEM) as conn:
        await conn.execute(text("CREATE TABLE marks (name TEXT)"))
    await db.dispose()
    return made


async def write(db: Database, name: str, hold: asyncio.Event | None = None) -> None:
    async with db.core(tenant=SYSTEM) as conn:
        await conn.execute(text("INSERT INTO marks VALUES (:name)"), {"name": name})
        if hold is not None:
            await hold.wait()


async def names(db: Database) -> list[str]:
    async with db.core(tenant=SYSTEM, write=False) as conn:
        return list((await conn.execute(text("SELECT name FROM marks ORDER BY rowid")))
                    .scalars())


async def test_a_second_writer_waits_for_the_first_to_commit(url: str) -> None:
    first, second = Database(url), Database(url)
    try:
        release = asyncio.Event()
        holder = asyncio.create_task(write(first, "first", hold=release))
        await asyncio.sleep(0.2)
        waiter = asyncio.create_task(write(second, "second"))
        await asyncio.sleep(0.5)
        assert not waiter.done(), "the second writer did not wait its turn"
        release.set()
        await asyncio.wait_for(asyncio.gather(holder, waiter), BOUND_SECONDS)
        assert await names(second) == ["first", "second"]
    finally:
        await first.dispose()
        await second.dispose()


async def test_a_writer_cancelled_while_waiting_gives_the_lock_back(url: str) -> None:
    first, second, third = Database(url), Database(url), Database(url)
    try:
        release = asyncio.Event()
        holder = asyncio.create_task(write(first, "first", hold=release))
        await asyncio.sleep(0.2)
        cancelled = asyncio.create_task(write(second, "never"))
        await asyncio.sleep(0.3)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        release.set()
        await holder
        # The cancelled waiter's thread took the lock after the holder let go, and
        # gave it back: a third writer gets its turn.
        await asyncio.wait_for(write(third, "third"), BOUND_SECONDS)
        assert await names(third) == ["first", "third"]
    finally:
        for db in (first, second, third):
            await db.dispose()


async def test_a_writer_waits_for_another_process_holding_the_lock(
        url: str, tmp_path: Path) -> None:
    lock_path = tmp_path / "tidings.db.write-lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         f"fd = os.open({str(lock_path)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "print('held', flush=True)\n"
         "time.sleep(1.0)\n"],
        stdout=subprocess.PIPE, text=True)
    db = Database(url)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        await asyncio.wait_for(write(db, "after"), BOUND_SECONDS)
        waited = time.monotonic() - started
        assert waited > 0.5, "wrote while another process held the lock"
        assert await names(db) == ["after"]
    finally:
        holder.wait(timeout=BOUND_SECONDS)
        await db.dispose()


def test_only_a_database_file_has_a_lock(tmp_path: Path) -> None:
    assert FileWriteLock.beside("sqlite+aiosqlite:///:memory:") is None
    assert FileWriteLock.beside("sqlite+aiosqlite://") is None
    lock = FileWriteLock.beside(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    assert lock is not None
    assert (tmp_path / "x.db.write-lock").exists()
    lock.close()
    lock.close()  # twice is harmless


# --- the writers of one process -------------------------------------------------------


async def test_an_urgent_writer_goes_before_the_writers_already_waiting() -> None:
    queue, order = WriterQueue(), []
    release = asyncio.Event()

    async def writer(name: str, *, urgent: bool = False, hold: bool = False) -> None:
        async with queue.turn(urgent=urgent):
            order.append(name)
            if hold:
                await release.wait()

    holder = asyncio.create_task(writer("holder", hold=True))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(writer(name)) for name in ("first", "second")]
    await asyncio.sleep(0)
    waiting.append(asyncio.create_task(writer("receipts", urgent=True)))
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, *waiting), BOUND_SECONDS)
    assert order == ["holder", "receipts", "first", "second"]


async def test_a_cancelled_waiter_never_gets_or_keeps_the_turn() -> None:
    queue, order = WriterQueue(), []
    release = asyncio.Event()

    async def writer(name: str, *, hold: bool = False) -> None:
        async with queue.turn():
            order.append(name)
            if hold:
                await release.wait()

    holder = asyncio.create_task(writer("holder", hold=True))
    await asyncio.sleep(0)
    gone, after = asyncio.create_task(writer("gone")), asyncio.create_task(writer("after"))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, after), BOUND_SECONDS)
    assert order == ["holder", "after"]
    # Granted and cancelled in the same turn of the loop: the turn is passed on.
    release.clear()
    holder = asyncio.create_task(writer("holder again", hold=True))
    await asyncio.sleep(0)
    granted, last = asyncio.create_task(writer("granted")), asyncio.create_task(writer("last"))
    await asyncio.sleep(0)
    release.set()
    await asyncio.sleep(0)  # the holder leaves and hands the turn to ``granted``
    granted.cancel()
    await asyncio.wait_for(asyncio.gather(holder, last, return_exceptions=True), BOUND_SECONDS)
    assert order[-1] == "last"
    async with queue.turn():  # and the queue is free again
        pass


async def test_an_urgent_transaction_commits_before_queued_ones(url: str) -> None:
    db, release = Database(url), asyncio.Event()
    try:
        holder = asyncio.create_task(write(db, "holder", hold=release))
        await asyncio.sleep(0.1)
        queued = asyncio.create_task(write(db, "queued"))
        await asyncio.sleep(0.1)

        async def urgent() -> None:
            async with db.core(tenant=SYSTEM, urgent=True) as conn:
                await conn.execute(text("INSERT INTO marks VALUES ('urgent')"))

        receipts = asyncio.create_task(urgent())
        await asyncio.sleep(0.1)
        release.set()
        await asyncio.wait_for(asyncio.gather(holder, queued, receipts), BOUND_SECONDS)
        assert await names(db) == ["holder", "urgent", "queued"]
    finally:
        await db.dispose()
