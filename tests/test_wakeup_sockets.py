"""Nudges between processes on one SQLite database, over real Unix datagram sockets.

Two bridges in one directory stand for two processes (the tests both bridges pass
are in ``test_wakeup_bridge``). Every wait is bounded far above
what a datagram takes; a nudge that never comes fails the test.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tidings.jobs.wakeup_sockets import SocketWakeupBridge, socket_directory
from tidings.jobs.wakeups import Wakeups
from tidings.messaging.service import EXPIRE_JOB
from tidings.messaging.status_changes import DISPATCH_JOB
from tidings.webhooks.service import DELIVER_JOB

KINDS = (DISPATCH_JOB, EXPIRE_JOB, DELIVER_JOB)
BOUND_SECONDS = 10.0


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    # Short: a socket path may not be longer than 107 bytes.
    return socket_directory(f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}")


@pytest.fixture
async def pair(directory: Path) -> AsyncIterator[tuple[Wakeups, Wakeups, SocketWakeupBridge]]:
    """Two processes' wake-ups, each behind its own bridge; and the second bridge."""
    first, second = Wakeups(), Wakeups()
    bridges = [SocketWakeupBridge(directory, w, KINDS) for w in (first, second)]
    for bridge in bridges:
        await bridge.start()
    yield first, second, bridges[1]
    for bridge in bridges:
        await bridge.stop()


def waiting(wakeups: Wakeups, kind: str) -> asyncio.Task[None]:
    return asyncio.create_task(wakeups.wait(kind, timeout=600))


async def test_garbage_datagrams_wake_nobody(
        pair: tuple[Wakeups, Wakeups, SocketWakeupBridge]) -> None:
    _, second, bridge = pair
    expire = waiting(second, EXPIRE_JOB)
    marker = waiting(second, DELIVER_JOB)
    await asyncio.sleep(0)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stranger:
        for payload in (b"", b"DROP TABLE jobs", b"message.expire\x01", b"\xff\xfe" * 40,
                        b"x" * 7000, b"message.EXPIRE", DELIVER_JOB.encode()):
            stranger.sendto(payload, str(bridge.path))  # in order, on one socket
    await asyncio.wait_for(marker, BOUND_SECONDS)
    assert not expire.done()
    expire.cancel()


async def test_the_socket_a_crashed_process_left_is_removed(directory: Path) -> None:
    directory.mkdir(mode=0o700, exist_ok=True)
    dead = directory / "99999999-dead.sock"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    leftover.bind(str(dead))
    leftover.close()  # the file stays, as after a kill -9
    first, second = Wakeups(), Wakeups()
    sender = SocketWakeupBridge(directory, first, KINDS)
    receiver = SocketWakeupBridge(directory, second, KINDS)
    await sender.start()
    await receiver.start()
    try:
        worker = waiting(second, DISPATCH_JOB)
        await asyncio.sleep(0)
        first.notify(DISPATCH_JOB)
        await asyncio.wait_for(worker, BOUND_SECONDS)  # the live peer is still reached
        assert not dead.exists()
    finally:
        await sender.stop()
        await receiver.stop()
    assert not directory.exists(), "each bridge removes its socket, the last the directory"


async def test_a_process_started_later_is_nudged_too(directory: Path) -> None:
    first, second = Wakeups(), Wakeups()
    early = SocketWakeupBridge(directory, first, KINDS)
    await early.start()
    first.notify(DISPATCH_JOB)  # reads the (empty) list of peers
    await asyncio.sleep(0)
    late = SocketWakeupBridge(directory, second, KINDS)
    await late.start()
    try:
        worker = waiting(second, DISPATCH_JOB)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BOUND_SECONDS
        while not worker.done():  # found at the next read of the directory
            assert loop.time() < deadline, "the later process was never nudged"
            first.notify(DISPATCH_JOB)
            await asyncio.wait([worker], timeout=0.2)
    finally:
        await early.stop()
        await late.stop()


async def test_a_directory_others_can_write_to_is_refused(directory: Path) -> None:
    directory.mkdir(mode=0o700, exist_ok=True)
    os.chmod(directory, 0o777)
    bridge = SocketWakeupBridge(directory, Wakeups(), KINDS)
    with pytest.raises(RuntimeError, match="mode 0700"):
        await bridge.start()
    assert list(directory.iterdir()) == []
    directory.rmdir()


def test_one_directory_per_database_file_however_it_is_named(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.chdir(tmp_path)
    absolute = socket_directory(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'tidings.db'}")
    assert socket_directory("sqlite+aiosqlite:///data/tidings.db") == absolute
    assert socket_directory("sqlite+aiosqlite:///data/other.db") != absolute
    assert len(str(absolute / "4194304-0123abcd.sock")) < 108
