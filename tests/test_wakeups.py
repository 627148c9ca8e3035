"""In-process nudges: one waiting loop woken per nudge, and what goes to other processes."""

from __future__ import annotations

import asyncio

from tidings.jobs.wakeups import Wakeups


async def test_a_nudge_wakes_one_waiting_loop_of_its_kind() -> None:
    wakeups = Wakeups()
    first, second = (asyncio.create_task(wakeups.wait("a", 600)) for _ in range(2))
    other = asyncio.create_task(wakeups.wait("b", 600))
    await asyncio.sleep(0)
    wakeups.notify("a")
    await asyncio.wait_for(first, 5)
    await asyncio.sleep(0)
    assert not second.done()
    assert not other.done()
    for task in (second, other):
        task.cancel()


async def test_a_nudge_with_nobody_waiting_is_kept_for_the_next_wait() -> None:
    wakeups = Wakeups()
    wakeups.notify("a")
    await asyncio.wait_for(wakeups.wait("a", 600), 5)


async def test_notify_publishes_and_wake_local_does_not() -> None:
    wakeups, published = Wakeups(), list[str]()
    wakeups.publisher = published.append
    wakeups.notify("a", "b")
    wakeups.wake_local("c")
    assert published == ["a", "b"]
