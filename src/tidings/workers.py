"""Worker loops: claim a batch of due jobs of one kind, run its handler, repeat.

A handler that raises leaves its jobs leased; they run again when the lease
ends, which is also what happens after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from tidings import outbox
from tidings.audit.service import seal_pending
from tidings.db import SYSTEM
from tidings.logs import get_logger
from tidings.messaging.models import Message

if TYPE_CHECKING:
    from tidings.runtime import Runtime

Handler = Callable[["Runtime", Sequence[outbox.Job]], Awaitable[None]]
log = get_logger("tidings.workers")


@dataclass(frozen=True)
class Worker:
    kind: str
    handler: Handler
    batch_size: int
    loops: int = 1


class WorkerPool:
    def __init__(self, rt: Runtime, workers: Sequence[Worker]) -> None:
        self._rt = rt
        self._workers = {w.kind: w for w in workers}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    async def run_once(self, kind: str) -> int:
        """Claim and handle one batch of ``kind``; the number of jobs handled."""
        worker, rt = self._workers[kind], self._rt
        jobs = await outbox.claim(rt.db, kind=kind, limit=worker.batch_size, now=rt.clock.now(),
                                  lease=timedelta(seconds=rt.settings.job_lease_seconds))
        if jobs:
            await worker.handler(rt, jobs)
        return len(jobs)

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

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _loop(self, kind: str) -> None:
        poll = self._rt.settings.worker_poll_seconds
        while not self._stopping.is_set():
            try:
                if await self.run_once(kind) == 0:
                    await self._rt.wakeups.wait(kind, poll)
            except Exception:
                log.exception("worker_batch_failed", kind=kind)
                await asyncio.sleep(1.0)

    async def _housekeeping(self) -> None:
        """Seal the audit chain and refresh gauges, off the request path."""
        while not self._stopping.is_set():
            try:
                await seal_pending(self._rt.db)
                await self._refresh_gauges()
            except Exception:
                log.exception("housekeeping_failed")
            await asyncio.sleep(0.5)

    async def _refresh_gauges(self) -> None:
        metrics = self._rt.metrics
        async with self._rt.db.transaction(tenant=SYSTEM, write=False) as session:
            depth = await outbox.depth(session)
            by_status = (await session.execute(
                select(Message.status, func.count()).group_by(Message.status))).all()
            for status, count in by_status:
                metrics.messages_by_status.labels(status).set(count)
        for kind in self._workers:
            metrics.queue_depth.labels(kind).set(depth.get(kind, 0))
