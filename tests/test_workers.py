"""Worker loops against the real job table: a kind that yields lets another's backlog go first."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from sqlalchemy import Text, cast, select

from tidings.jobs import outbox
from tidings.jobs.outbox import ClaimedJob, job_row
from tidings.jobs.workers import Worker, WorkerPool
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

BATCH = 2
# A period well above a batch's 0.1 s, so that a slow claim under load cannot blur
# "once a period" with "back to back".
YIELD_SECONDS = 1.0


async def enqueue(rt: Runtime, kind: str, count: int) -> None:
    now = rt.clock.now()
    async with rt.db.core(tenant=SYSTEM) as session:
        await outbox.enqueue_rows(session, [job_row(tenant="acc_test", kind=kind,
                                                    ref_id=f"{kind}-{i}", now=now)
                                            for i in range(count)])
    rt.wakeups.notify(kind)  # as the code that queues work does


class Recorder:
    """Handlers that note when each batch ran, finish their jobs and may add more."""

    def __init__(self, rt: Runtime, *, refill: int = 0, work_seconds: float = 0.1) -> None:
        self.rt, self.refill, self.work_seconds = rt, refill, work_seconds
        self.ran: dict[str, list[float]] = {"first": [], "then": []}
        self.started = time.monotonic()

    def handler(self, kind: str):  # type: ignore[no-untyped-def]
        async def handle(rt: Runtime, jobs: Sequence[ClaimedJob]) -> None:
            self.ran[kind].append(time.monotonic() - self.started)
            await asyncio.sleep(self.work_seconds)  # a batch's work
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


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def test_under_a_backlog_the_yielding_kind_claims_once_a_period_and_still_runs(
        rt: Runtime) -> None:
    rt.settings.worker_yield_seconds = YIELD_SECONDS
    await enqueue(rt, "first", 2 * BATCH)
    recorder = Recorder(rt, refill=BATCH)  # every batch adds as much as it took: no end
    await run_until(pool(rt, recorder), lambda: len(recorder.ran["then"]) == 3,
                    after=lambda: bool(recorder.ran["first"]),
                    then=lambda: enqueue(rt, "then", 3 * BATCH))
    assert len(recorder.ran["then"]) == 3, "starved"
    # The period runs from claim to claim; the handlers' starts add the claims' jitter.
    assert all(gap > 0.7 * YIELD_SECONDS for gap in gaps(recorder.ran["then"])), recorder.ran
    assert len(recorder.ran["first"]) >= 8  # the backlog went on meanwhile


async def test_a_claim_made_before_the_backlog_counts_towards_the_period(
        rt: Runtime) -> None:
    """The backlog appears while a batch claimed without one runs: the next claim still
    waits for the period since that claim, not for a claim under the backlog."""
    rt.settings.worker_yield_seconds = YIELD_SECONDS
    await enqueue(rt, "then", 3 * BATCH)
    recorder = Recorder(rt, refill=BATCH, work_seconds=0.3)
    await run_until(pool(rt, recorder), lambda: len(recorder.ran["then"]) == 2,
                    after=lambda: bool(recorder.ran["then"]),
                    then=lambda: enqueue(rt, "first", 2 * BATCH))
    first_batch, second_batch = recorder.ran["then"][:2]
    assert recorder.ran["first"], "the backlog was there"
    assert recorder.ran["first"][0] < second_batch, recorder.ran
    assert second_batch - first_batch > 0.7 * YIELD_SECONDS, recorder.ran


async def test_without_a_backlog_the_yielding_kind_runs_its_batches_back_to_back(
        rt: Runtime) -> None:
    rt.settings.worker_yield_seconds = YIELD_SECONDS
    recorder = Recorder(rt)
    await run_until(pool(rt, recorder), lambda: len(recorder.ran["then"]) == 3,
                    then=lambda: enqueue(rt, "then", 3 * BATCH))
    assert all(gap < 0.6 * YIELD_SECONDS for gap in gaps(recorder.ran["then"])), recorder.ran


async def test_a_kind_that_yields_to_one_this_pool_does_not_run_does_not_wait(
        rt: Runtime) -> None:
    await enqueue(rt, "then", BATCH)
    recorder = Recorder(rt)
    alone = WorkerPool(rt, [Worker("then", recorder.handler("then"), BATCH,
                                   yields_to="first")])
    await run_until(alone, lambda: bool(recorder.ran["then"]))
    assert recorder.ran["then"][0] < 1.0


async def test_a_job_without_payload_is_stored_as_null_and_claimed_back_as_none(
        rt: Runtime) -> None:
    now = rt.clock.now()
    async with rt.db.core(tenant=SYSTEM) as session:
        await outbox.enqueue_rows(session, [
            job_row(tenant="acc_test", kind="plain", ref_id="bare", now=now),
            job_row(tenant="acc_test", kind="plain", ref_id="full", now=now,
                    payload={"type": "receipt", "seq": 3, "nested": [1, None]})])
    async with rt.db.core(tenant=SYSTEM, write=False) as session:
        stored = dict((await session.execute(select(outbox.Job.ref_id,
                                                    outbox.Job.payload.is_(None)))).all())
    assert stored == {"bare": True, "full": False}  # SQL NULL, not the JSON text 'null'
    claimed = await outbox.claim(rt.db, kind="plain", limit=10, now=now,
                                 lease=timedelta(seconds=30))
    assert {job.ref_id: job.payload for job in claimed} == {
        "bare": None, "full": {"type": "receipt", "seq": 3, "nested": [1, None]}}


async def test_a_claim_takes_no_more_than_its_limit(rt: Runtime) -> None:
    """On PostgreSQL the due jobs are picked once: a plan that ran the locking subquery
    again for each row of ``jobs`` claimed every due job, whatever the limit."""
    await enqueue(rt, "first", 3 * BATCH)
    for _ in range(3):
        claimed = await outbox.claim(rt.db, kind="first", limit=BATCH, now=rt.clock.now(),
                                     lease=timedelta(seconds=30))
        assert len(claimed) == BATCH
    assert await outbox.claim(rt.db, kind="first", limit=BATCH, now=rt.clock.now(),
                              lease=timedelta(seconds=30)) == []


async def test_a_payload_is_stored_as_compact_json_and_read_back(rt: Runtime) -> None:
    """JSON columns go through orjson (compact text), not json.dumps (with spaces): every
    send stores a payload and a worker reads it back, so the codec is on the hot path."""
    now, payload = rt.clock.now(), {"request_id": "req_1", "nested": [1, None, "é"]}
    async with rt.db.core(tenant=SYSTEM) as session:
        await outbox.enqueue_rows(session, [
            job_row(tenant="acc_test", kind="plain", ref_id="full", now=now, payload=payload)])
    async with rt.db.core(tenant=SYSTEM, write=False) as session:
        text = await session.scalar(select(cast(outbox.Job.payload, Text)))
    assert text == '{"request_id":"req_1","nested":[1,null,"é"]}'
    claimed = await outbox.claim(rt.db, kind="plain", limit=10, now=now,
                                 lease=timedelta(seconds=30))
    assert [job.payload for job in claimed] == [payload]
