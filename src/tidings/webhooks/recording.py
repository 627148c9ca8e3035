"""Each answered webhook attempt recorded as its answer arrives, many in one transaction.

A batch of webhooks lasts as long as its slowest endpoint. Recording its attempts only
when it ends would leave every answer already received unrecorded until then, and a
crash in between would send them all again. Here each answer is queued as it arrives;
one task takes everything queued, writes it in one transaction (each delivery's new
state, its attempt, its job done or released for the retry) and only then wakes the
batches waiting on it. The first answer waits ``GATHER_SECONDS`` for others, and while
one transaction commits the answers arriving meanwhile gather for the next: group
commit, as ``writer.py`` does for the send path (on SQLite every transaction queues for
the one write lock the send path needs too). So a crash repeats only the requests in
flight, or answered within the last few milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, update

from tidings.jobs.outbox import complete, retry_many_later
from tidings.storage.bulk import execute_many, insert_many
from tidings.storage.db import SYSTEM, Database
from tidings.webhooks.models import WebhookAttempt, WebhookDelivery

DELIVERIES = cast(Table, WebhookDelivery.__table__)
ATTEMPTS = cast(Table, WebhookAttempt.__table__)
WRITTEN = ("status", "attempts", "next_attempt_at", "last_status_code", "last_error",
           "completed_at")
"""The columns of a delivery an attempt changes."""

GATHER_SECONDS = 0.005
"""How long the first answer of a group waits for others: each answer stays unrecorded
(and would be sent again after a crash) this much longer, for far fewer transactions
when answers come in a stream."""

_STORE = (update(DELIVERIES).where(DELIVERIES.c.id == bindparam("delivery_id"))
          .values({name: bindparam(f"new_{name}", type_=DELIVERIES.c[name].type)
                   for name in WRITTEN}))


@dataclass(frozen=True, slots=True)
class Answered:
    """One attempt that got an answer (or a timeout, or a refusal): what to store."""

    job_id: int
    delivery_id: str
    state: dict[str, Any]  # the delivery's new values of ``WRITTEN``
    attempt: dict[str, Any]  # a webhook_attempts row
    retry_at: datetime | None  # when the job runs again; None: it is done


@dataclass(slots=True)
class _Queued:
    answered: Answered
    done: asyncio.Future[None]


class AttemptRecorder:
    """Records ``Answered`` attempts in group commits; ``record`` resolves once durable."""

    def __init__(self, db: Database, *, max_items: int = 2_000,
                 gather_seconds: float = GATHER_SECONDS) -> None:
        self._db, self._max_items, self._gather = db, max_items, gather_seconds
        # A list and an event rather than an asyncio.Queue: one put and one get a webhook
        # were 2 % of a webhook worker's CPU in bench.smpp, an append is next to nothing.
        self._queued: list[_Queued] = []
        self._arrived = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Record what is queued, then stop."""
        if self._task is None:
            return
        self._stopping = True
        self._arrived.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def record(self, answered: Answered) -> asyncio.Future[None]:
        """Queue ``answered``; the future resolves once it is committed (or fails with
        what the database raised). Not a coroutine: a sender's lane queues its answer and
        goes on to the next request without waiting for the commit."""
        if self._task is None:
            raise RuntimeError("the attempt recorder is not running")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append(_Queued(answered, done))
        if len(self._queued) == 1:
            self._arrived.set()
        return done

    async def _run(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            if self._gather > 0 and len(self._queued) == 1 and not self._stopping:
                await asyncio.sleep(self._gather)
            while self._queued:  # what arrives during a commit goes in the next one
                group = self._queued[:self._max_items]
                del self._queued[:self._max_items]
                await self._commit_all(group)
            if self._stopping:
                return

    async def _commit_all(self, group: list[_Queued]) -> None:
        try:
            await store(self._db, [q.answered for q in group])
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0], exc)
                return
            for queued in group:  # one bad row fails alone; the others are still stored
                try:
                    await store(self._db, [queued.answered])
                except Exception as single:
                    _settle(queued, single)
                else:
                    _settle(queued, None)
            return
        for queued in group:
            _settle(queued, None)


async def store(db: Database, answers: Sequence[Answered]) -> None:
    """Write ``answers`` in one transaction: deliveries, attempts, and their jobs."""
    async with db.core(tenant=SYSTEM) as session:
        await execute_many(session, _STORE, [
            {"delivery_id": a.delivery_id, **{f"new_{n}": a.state[n] for n in WRITTEN}}
            for a in answers])
        await insert_many(session, ATTEMPTS, [a.attempt for a in answers])
        await retry_many_later(session, [(a.job_id, a.retry_at) for a in answers
                                         if a.retry_at is not None])
        await complete(session, [a.job_id for a in answers if a.retry_at is None])


def _settle(queued: _Queued, error: BaseException | None) -> None:
    if queued.done.done():  # its batch gave up waiting (cancelled)
        return
    if error is None:
        queued.done.set_result(None)
    else:
        queued.done.set_exception(error)
