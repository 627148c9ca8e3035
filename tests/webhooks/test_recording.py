"""Answered webhooks recorded as their answers arrive, grouped; the short webhook lease.

On SQLite and PostgreSQL (the ``database_url`` fixture). Time is the runtime's FakeClock;
the waits below only let real requests to loopback receivers come and go.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import HookServer, Tenant, assign, hook_server, make_tenant, settle
from tidings.core.clock import FakeClock
from tidings.jobs.outbox import Job, enqueue_rows, job_row
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.webhooks import recording
from tidings.webhooks.models import WebhookAttempt, WebhookDelivery
from tidings.webhooks.recording import Answered, AttemptRecorder
from tidings.webhooks.service import DELIVER_JOB


async def inbound(client: httpx.AsyncClient, rt: Runtime, tenant: Tenant, number: str) -> None:
    """An inbound message to ``tenant``: one webhook delivery and its job."""
    await assign(rt, tenant.id, number)
    response = await client.post("/v1/sandbox/inbound", headers=tenant.headers, json={
        "from": "+14155550100", "to": number, "body": "ping"})
    assert response.status_code == 201, response.text


async def deliveries(rt: Runtime) -> dict[str, WebhookDelivery]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return {d.tenant_id: d for d in (await session.scalars(select(WebhookDelivery))).all()}


async def jobs(rt: Runtime) -> dict[str, Job]:
    """Webhook jobs by the id of their delivery."""
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return {j.ref_id: j for j in (await session.scalars(
            select(Job).where(Job.kind == DELIVER_JOB))).all()}


async def attempts(rt: Runtime) -> list[WebhookAttempt]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return list((await session.scalars(select(WebhookAttempt))).all())


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait (bounded) for something real processes and sockets bring about."""
    for _ in range(1000):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_an_answer_is_recorded_while_the_rest_of_its_batch_is_in_flight(
        client: httpx.AsyncClient, rt: Runtime, hooks: HookServer) -> None:
    """One batch, two endpoints: the quick one's answer is durable (delivery succeeded,
    job gone) while the other still hangs, so a crash then would not send it again."""
    async with hook_server() as hanging:
        hanging.answer_once_open = 1_000  # holds every request until released
        quick = await make_tenant(rt, "Quick", webhook_url=hooks.url)
        slow = await make_tenant(rt, "Slow", webhook_url=hanging.url)
        await inbound(client, rt, quick, "+12025550173")
        await inbound(client, rt, slow, "+12025550174")

        batch = asyncio.create_task(rt.worker_pool().run_once(DELIVER_JOB))
        try:
            async def quick_recorded() -> bool:
                return (await deliveries(rt))[quick.id].status == "succeeded"

            await eventually(quick_recorded, "the quick answer recorded mid-batch")
            assert hanging.requests
            assert not batch.done()
            by_delivery = await jobs(rt)
            recorded = await deliveries(rt)
            assert recorded[quick.id].id not in by_delivery  # its job is done
            assert recorded[slow.id].status == "pending"
            assert [(a.delivery_id, a.status_code) for a in await attempts(rt)] == [
                (recorded[quick.id].id, 200)]
        finally:
            hanging.release()
            assert await batch == 2
    final = await deliveries(rt)
    assert {t: (d.status, d.attempts) for t, d in final.items()} == {
        quick.id: ("succeeded", 1), slow.id: ("succeeded", 1)}
    assert await jobs(rt) == {}
    assert len(hooks.requests) == len(hanging.requests) == 1


def answered(delivery: WebhookDelivery, job: Job, *, ok: bool = True,
             duration_ms: int | None = 12) -> Answered:
    now = delivery.created_at + timedelta(seconds=1)
    return Answered(
        job.id, delivery.id,
        {"status": "succeeded" if ok else "pending", "attempts": 1,
         "next_attempt_at": None if ok else now + timedelta(seconds=5),
         "last_status_code": 200 if ok else 500, "last_error": None if ok else "HTTP 500",
         "completed_at": now if ok else None},
        {"tenant_id": delivery.tenant_id, "delivery_id": delivery.id, "number": 1,
         "status_code": 200 if ok else 500, "error": None if ok else "HTTP 500",
         "duration_ms": duration_ms, "response_bytes": 2, "created_at": now},
        None if ok else now + timedelta(seconds=5))


@pytest.fixture
async def three(client: httpx.AsyncClient, rt: Runtime, hooks: HookServer
                ) -> list[tuple[WebhookDelivery, Job]]:
    """Three pending deliveries (three tenants) with their jobs, never claimed."""
    for n in range(3):
        tenant = await make_tenant(rt, f"T{n}", webhook_url=hooks.url)
        await inbound(client, rt, tenant, f"+1202555017{n}")
    by_job = await jobs(rt)
    return [(d, by_job[d.id]) for d in (await deliveries(rt)).values()]


@pytest.fixture
def stores(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each transaction the recorders write."""
    sizes: list[int] = []
    real = recording.store

    async def counted(db: Any, answers: Sequence[Answered]) -> None:
        sizes.append(len(answers))
        await real(db, answers)

    monkeypatch.setattr(recording, "store", counted)
    return sizes


async def test_answers_arriving_together_are_stored_in_one_transaction(
        rt: Runtime, three: list[tuple[WebhookDelivery, Job]], stores: list[int]) -> None:
    recorder = AttemptRecorder(rt.db)
    recorder.start()
    try:
        (d0, j0), (d1, j1), (d2, j2) = three
        waits = [recorder.record(answered(d0, j0)), recorder.record(answered(d1, j1)),
                 recorder.record(answered(d2, j2, ok=False))]
        await asyncio.gather(*waits)
    finally:
        await recorder.stop()
    assert stores == [3]
    stored = {d.id: d for d in (await deliveries(rt)).values()}
    assert [stored[d.id].status for d, _ in three] == ["succeeded", "succeeded", "pending"]
    assert stored[d2.id].last_status_code == 500
    assert sorted(a.delivery_id for a in await attempts(rt)) == sorted(d.id for d, _ in three)
    left = await jobs(rt)
    assert set(left) == {d2.id}  # the succeeded ones' jobs are done
    retry = answered(d2, j2, ok=False).retry_at
    assert left[d2.id].run_at == retry
    assert left[d2.id].locked_until is None


async def test_answers_arriving_within_the_gathering_window_share_a_transaction(
        rt: Runtime, three: list[tuple[WebhookDelivery, Job]], stores: list[int]) -> None:
    """Answers a few event-loop turns apart (as a batch's lanes bring them): one commit.
    The window is long here so that a slow machine cannot split the group."""
    recorder = AttemptRecorder(rt.db, gather_seconds=0.5)
    recorder.start()
    try:
        waits = []
        for delivery, job in three:
            waits.append(recorder.record(answered(delivery, job)))
            for _ in range(5):
                await asyncio.sleep(0)
        await asyncio.gather(*waits)
    finally:
        await recorder.stop()
    assert stores == [3]


async def test_a_bad_answer_fails_alone_and_changes_nothing(
        rt: Runtime, three: list[tuple[WebhookDelivery, Job]], stores: list[int]) -> None:
    recorder = AttemptRecorder(rt.db)
    recorder.start()
    try:
        (d0, j0), (d1, j1), (d2, j2) = three
        good = [recorder.record(answered(d0, j0)), recorder.record(answered(d2, j2))]
        bad = recorder.record(answered(d1, j1, duration_ms=None))  # NOT NULL: refused
        await asyncio.gather(*good)
        with pytest.raises(Exception, match=r"(?i)null"):
            await bad
    finally:
        await recorder.stop()
    assert stores == [3, 1, 1, 1]  # the group failed; each answer then alone
    stored = {d.id: d for d in (await deliveries(rt)).values()}
    assert (stored[d1.id].status, stored[d1.id].attempts) == ("pending", 0)
    assert stored[d0.id].status == stored[d2.id].status == "succeeded"
    assert sorted(a.delivery_id for a in await attempts(rt)) == sorted([d0.id, d2.id])
    assert set(await jobs(rt)) == {d1.id}


async def test_a_recorder_not_running_refuses_to_queue(
        rt: Runtime, three: list[tuple[WebhookDelivery, Job]]) -> None:
    recorder = AttemptRecorder(rt.db)
    (d0, j0), *_ = three
    with pytest.raises(RuntimeError, match="not running"):
        recorder.record(answered(d0, j0))


async def test_a_delivery_recorded_as_answered_is_not_sent_again_when_its_job_runs_again(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    tenant = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    await inbound(client, rt, tenant, "+12025550173")
    await settle(rt, clock)
    [done] = (await deliveries(rt)).values()
    assert done.status == "succeeded"
    assert len(hooks.requests) == 1
    # Its job again, as if a run that lost its lease had left it behind.
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await enqueue_rows(session, [job_row(tenant=tenant.id, kind=DELIVER_JOB,
                                             ref_id=done.id, now=clock.now())])
    await settle(rt, clock)
    assert len(hooks.requests) == 1
    assert await jobs(rt) == {}
    assert [a.number for a in await attempts(rt)] == [1]


async def test_webhook_jobs_are_leased_for_the_short_webhook_lease(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    """A crashed webhook batch is claimed again after ``webhook_lease_seconds`` (renewed
    while it runs), not after the 30 s of other jobs."""
    assert rt.settings.webhook_lease_seconds < rt.settings.job_lease_seconds
    hooks.answer_once_open = 1_000
    tenant = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    await inbound(client, rt, tenant, "+12025550173")
    batch = asyncio.create_task(rt.worker_pool().run_once(DELIVER_JOB))
    try:
        async def sent() -> bool:
            return bool(hooks.requests)

        await eventually(sent, "the webhook sent")
        [job] = (await jobs(rt)).values()
        assert job.locked_until == clock.now() + timedelta(
            seconds=rt.settings.webhook_lease_seconds)
    finally:
        hooks.release()
        assert await batch == 1
