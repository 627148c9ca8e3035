"""Worker loops: claim a batch of due jobs of one kind, run its handler, repeat.

While a handler runs, its worker renews the jobs' lease, so a slow batch is never
claimed a second time by another loop while the first is still at work. A handler
that raises leaves its jobs leased; they run again when the lease ends, which is
also what happens after a crash (nobody renews the lease of a dead process).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tidings.core import request_ids
from tidings.core.logs import get_logger
from tidings.jobs import outbox
from tidings.storage.db import SYSTEM

if TYPE_CHECKING:
    from tidings.core.services import Services

STOP_GRACE_SECONDS = 10.0  # how long stop() lets a batch in hand finish
Handler = Callable[["Services", Sequence[outbox.ClaimedJob]], Awaitable[None]]
log = get_logger("tidings.workers")
YIELD_CHECK_SECONDS = 0.02
HOUSEKEEPING_SECONDS = 0.5  # a round of chores
GAUGE_EVERY = 20  # housekeeping rounds: table-wide counts every 10 s


@dataclass(frozen=True)
class Worker:
    kind: str
    handler: Handler
    batch_size: int
    loops: int = 1
    yields_to: str | None = None  # a kind whose backlog this one lets go first
    lease_seconds: float | None = None  # None: the settings' job_lease_seconds


@dataclass(frozen=True)
class Chore:
    """Housekeeping a domain asks for: ``run`` every ``every`` rounds."""

    name: str
    run: Callable[[Services], Awaitable[None]]
    every: int = 1


class WorkerPool:
    def __init__(self, rt: Services, workers: Sequence[Worker],
                 chores: Sequence[Chore] = ()) -> None:
        self._rt = rt
        self._workers = {w.kind: w for w in workers}
        self._chores = list(chores)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._claim_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last_short_claim: dict[str, float | None] = {}
        self._last_claim_at: dict[str, float] = {}  # of the kinds that yield to another

    async def run_once(self, kind: str) -> int:
        """Claim and handle one batch of ``kind``; the number of jobs handled."""
        jobs, leased_until = await self._claim(kind)
        await self._handle(kind, jobs, leased_until)
        return len(jobs)

    def _lease(self, kind: str) -> timedelta:
        seconds = self._workers[kind].lease_seconds
        return timedelta(seconds=seconds or self._rt.settings.job_lease_seconds)

    async def _claim(self, kind: str) -> tuple[list[outbox.ClaimedJob], datetime]:
        rt = self._rt
        now, lease = rt.clock.now(), self._lease(kind)
        jobs = await outbox.claim(rt.db, kind=kind, limit=self._workers[kind].batch_size,
                                  now=now, lease=lease)
        return jobs, now + lease

    async def _handle(self, kind: str, jobs: Sequence[outbox.ClaimedJob],
                      leased_until: datetime) -> None:
        if not jobs:
            return
        done = asyncio.Event()
        renewer = asyncio.create_task(self._renew_lease(kind, jobs, leased_until, done))
        try:
            await self._workers[kind].handler(self._rt, jobs)
        finally:
            done.set()
            # Let a renewal in flight finish rather than cancel it inside a transaction.
            await asyncio.wait([renewer])

    async def _renew_lease(self, kind: str, jobs: Sequence[outbox.ClaimedJob],
                           leased_until: datetime, done: asyncio.Event) -> None:
        """Every third of the lease, push the lease of ``jobs`` on until ``done`` is set."""
        rt = self._rt
        lease = self._lease(kind)
        third = lease.total_seconds() / 3
        while True:
            # Renew once a third of the lease has passed (at once if the claim itself was slow).
            due_in = (leased_until - lease * 2 / 3 - rt.clock.now()).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), max(0.0, min(due_in, third)))
            if done.is_set():
                return
            until = rt.clock.now() + lease
            try:
                if await outbox.extend(rt.db, jobs, leased_until=leased_until,
                                       until=until) == 0:
                    return  # nothing left to hold: completed, retried or taken over
            except Exception:
                log.exception("lease_renewal_failed", kind=kind)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), third)
                continue
            leased_until = until

    async def drain(self, *, rounds: int = 100) -> int:
        """Run every kind until nothing is due (tests use this with a fake clock)."""
        total = 0
        for _ in range(rounds):
            handled = sum([await self.run_once(kind) for kind in self._workers])
            total += handled
            if handled == 0:
                break
        return total

    def start(self) -> None:
        for worker in self._workers.values():
            for _ in range(worker.loops):
                self._tasks.append(asyncio.create_task(self._loop(worker.kind)))
        self._tasks.append(asyncio.create_task(self._housekeeping()))

    async def stop(self, *, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Let every loop finish the batch in hand (up to ``grace_seconds``), then cancel.

        Cancelling a loop inside a transaction would roll it back mid-way and leave its
        jobs to run again after the lease (a webhook sent twice, a message resubmitted).
        """
        self._stopping.set()
        self._rt.wakeups.notify_all(*self._workers)  # idle loops return at once
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks.clear()

    async def _loop(self, kind: str) -> None:
        poll = self._rt.settings.worker_poll_seconds
        while not self._stopping.is_set():
            jobs: Sequence[outbox.ClaimedJob] = ()
            try:
                jobs, leased_until = await self._claim_in_turn(kind)
                if jobs:
                    with request_ids.bound_to_jobs(jobs):  # on the handler's log lines
                        await self._handle(kind, jobs, leased_until)
                else:
                    await self._rt.wakeups.wait(kind, poll)
            except Exception:
                log.exception("worker_batch_failed", kind=kind, **request_ids.of_jobs(jobs))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 1.0)

    async def _claim_in_turn(self, kind: str) -> tuple[list[outbox.ClaimedJob], datetime]:
        """Claim for one of the kind's loops; after a short batch, the next claim waits.

        Under a stream of single sends, every nudge would otherwise start a batch of a
        job or two, each paying its transactions. Spacing the claims of all the kind's
        loops by ``worker_gather_seconds`` after a batch that was not full lets work
        gather into fuller batches, while the loops still run batches side by side.
        """
        gather = self._rt.settings.worker_gather_seconds
        async with self._claim_locks[kind]:
            await self._yield(kind)
            short_at = self._last_short_claim.get(kind)
            if short_at is not None:
                await self._pause(short_at + gather - time.monotonic())
            jobs, leased_until = await self._claim(kind)
            full = len(jobs) >= self._workers[kind].batch_size
            self._last_short_claim[kind] = None if full else time.monotonic()
        return jobs, leased_until

    async def _yield(self, kind: str) -> None:
        """While the kind this one yields to has a backlog, claim at most once every
        ``worker_yield_seconds`` (all of the kind's loops together: the caller holds the
        kind's claim lock). Under overload, submits to carriers come before the webhooks
        about them, and the webhooks still get a batch through every so often."""
        first = self._workers[kind].yields_to
        if first is None or first not in self._workers:
            return
        # Every claim counts, one made before the backlog was seen too: the first claim
        # under a backlog waits for the period since the last one.
        until = self._last_claim_at.get(kind, 0.0) + self._rt.settings.worker_yield_seconds
        while self._backlogged(first) and time.monotonic() < until:
            await self._pause(YIELD_CHECK_SECONDS)
            if self._stopping.is_set():
                return
        self._last_claim_at[kind] = time.monotonic()

    def _backlogged(self, kind: str) -> bool:
        """Whether the last claim of ``kind`` came back full (so more is waiting)."""
        return kind in self._last_short_claim and self._last_short_claim[kind] is None

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _housekeeping(self) -> None:
        """The domains' chores (sealing the audit chain, counting messages) and the queue
        gauges, off the request path, a round every ``HOUSEKEEPING_SECONDS``; the gauges
        count whole tables, so only every ``GAUGE_EVERY`` rounds."""
        rounds = 0
        while not self._stopping.is_set():
            for chore in self._chores:
                if rounds % chore.every == 0:
                    await self._run_chore(chore)
            if rounds % GAUGE_EVERY == 0:
                await self._run_chore(Chore("queue_gauges", self._refresh_gauges))
            rounds += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), HOUSEKEEPING_SECONDS)

    async def _run_chore(self, chore: Chore) -> None:
        try:
            await chore.run(self._rt)
        except Exception:
            log.exception("housekeeping_failed", chore=chore.name)

    async def _refresh_gauges(self, rt: Services) -> None:
        async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
            depth = await outbox.depth(session)
        for kind in self._workers:
            rt.metrics.queue_depth.labels(kind).set(depth.get(kind, 0))
