"""Worker loops against the real job table: a kind that yields lets another's backlog go first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from tidings import outbox
from tidings.db import SYSTEM
from tidings.outbox import ClaimedJob, job_row
from tidings.runtime import Runtime
from tidings.workers import Worker, WorkerPool

BATCH = 2


async def enqueue(rt: Runtime, kind: str, count: int) -> None:
    now = rt.clock.now()
    async with rt.db.core(tenant=SYSTEM) as session:
        await outbox.enqueue_rows(session, [job_row(tenant="acc_test", kind=kind,
                                                    ref_id=f"{kind}-{i}", now=now)
                                            for i in range(count)])
    rt.wakeups.notify(kind)  # as the code that queues work does


class Recorder:
    """Handlers that note when each batch ran, finish their jobs and may add more."""

    def __init__(self, rt: Runtime, *, refill: int = 0) -> None:
        self.rt, self.refill = rt, refill
        self.ran: dict[str, list[float]] = {"first": [], "then": []}
        self.started = time.monotonic()

    def handler(self, kind: str):  # type: ignore[no-untyped-def]
        async def handle(rt: Runtime, jobs: Sequence[ClaimedJob]) -> None:
            self.ran[kind].append(time.monotonic() - self.started)
            await asyncio.sleep(0.1)  # a batch's work
            async with rt.db.core(tenant=SYSTEM) as session:
                await outbox.complete(session, [j.id for j in jobs])
            if kind == "first" and self.refill:
                await enqueue(rt, "first", self.refill)
        return handle


def pool(rt: Runtime, recorder: Recorder) -> WorkerPool:
    return WorkerPool(rt, [Worker("first", recorder.handler("first"), BATCH),
                           Worker("then", recorder.handler("then"), BATCH, yields_to="first")])


async def until(done: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


async def run_until(pool: WorkerPool, done: Callable[[], bool], *,
                    then: Callable[[], Awaitable[None]] | None = None,
                    after: Callable[[], bool] = lambda: True) -> None:
    """Start ``pool``; once ``after`` holds, run ``then``; stop when ``done`` holds."""
    pool.start()
    try:
        await until(after)
        if then is not None:
            await then()
        await until(done)
    finally:
        await pool.stop()


async def test_a_yielding_kind_waits_for_the_backlog_it_yields_to(rt: Runtime) -> None:
    await enqueue(rt, "first", 6 * BATCH)
    recorder = Recorder(rt)
    # The other kind's work comes once the backlog is being worked through.
    await run_until(pool(rt, recorder), lambda: bool(recorder.ran["then"]),
                    after=lambda: bool(recorder.ran["first"]),
                    then=lambda: enqueue(rt, "then", BATCH))
    assert recorder.ran["then"], "the yielding kind never ran"
    assert len(recorder.ran["first"]) == 6  # every batch of the backlog ran first
    assert recorder.ran["then"][0] > recorder.ran["first"][-1]


async def test_a_yielding_kind_still_runs_when_the_backlog_never_ends(rt: Runtime) -> None:
    rt.settings.worker_yield_seconds = 0.5
    await enqueue(rt, "first", 2 * BATCH)
    recorder = Recorder(rt, refill=BATCH)  # every batch adds as much as it took
    await run_until(pool(rt, recorder), lambda: bool(recorder.ran["then"]),
                    after=lambda: bool(recorder.ran["first"]),
                    then=lambda: enqueue(rt, "then", BATCH))
    assert recorder.ran["then"], "starved"
    waited = recorder.ran["then"][0] - recorder.ran["first"][0]
    assert 0.45 < waited < 3.0
    assert len(recorder.ran["first"]) >= 4  # the backlog was still there meanwhile


async def test_a_kind_that_yields_to_one_this_pool_does_not_run_does_not_wait(
        rt: Runtime) -> None:
    await enqueue(rt, "then", BATCH)
    recorder = Recorder(rt)
    alone = WorkerPool(rt, [Worker("then", recorder.handler("then"), BATCH,
                                   yields_to="first")])
    await run_until(alone, lambda: bool(recorder.ran["then"]))
    assert recorder.ran["then"][0] < 1.0
