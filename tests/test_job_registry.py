"""The job registry the domains fill: the workers and chores the runtime builds from it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from tidings.core.services import Services
from tidings.core.settings import Settings
from tidings.jobs.outbox import ClaimedJob
from tidings.jobs.registry import JobRegistry
from tidings.jobs.workers import HOUSEKEEPING_SECONDS, WorkerPool
from tidings.messaging.status_changes import DISPATCH_JOB
from tidings.runtime import JOB_KINDS, JOBS, Runtime
from tidings.webhooks.service import DELIVER_JOB


async def nothing(rt: Services, jobs: Sequence[ClaimedJob]) -> None:
    return None


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path, **values)  # type: ignore[arg-type]


def test_a_kind_registered_twice_is_refused() -> None:
    registry = JobRegistry()
    registry.job("a.kind", nothing)
    with pytest.raises(ValueError, match="registered twice"):
        registry.job("a.kind", nothing)


def test_workers_take_their_loops_and_lease_from_the_settings(tmp_path: Path) -> None:
    registry = JobRegistry()
    registry.job("fixed", nothing, loops=2)
    registry.job("from.settings", nothing, loops=lambda s: s.webhook_loops, yields_to="fixed",
                 lease_seconds=lambda s: s.webhook_lease_seconds)
    registry.job("switched.off", nothing, loops=lambda s: 0)
    made = registry.workers(settings(tmp_path, webhook_loops=3, webhook_lease_seconds=7.0,
                                     worker_batch_size=50))
    assert [(w.kind, w.loops, w.yields_to, w.lease_seconds, w.batch_size) for w in made] == [
        ("fixed", 2, None, None, 50), ("from.settings", 3, "fixed", 7.0, 50)]
    only = registry.workers(settings(tmp_path), only=["from.settings"])
    assert [w.kind for w in only] == ["from.settings"]


def test_every_domain_registers_its_kinds_in_the_order_a_drain_runs_them() -> None:
    assert JOB_KINDS == ("message.dispatch", "message.expire", "message.fallback",
                         "webhook.deliver", "smpp.deliver", "mail.send", "privacy.fulfil",
                         "subprocessors.notify", "policies.notify")
    assert {chore.name for chore in JOBS.chores} == {"messages_by_status", "audit_seal",
                                                     "erasure_replay", "privacy_deadlines",
                                                     "idempotency_prune", "retention",
                                                     "account_purges", "breach_clocks",
                                                     "subprocessor_objections",
                                                     "service_stats"}
    webhooks = JOBS.kinds[DELIVER_JOB]
    assert webhooks.yields_to == DISPATCH_JOB


async def test_chores_run_on_their_rounds_and_one_that_fails_stops_no_other(
        rt: Runtime) -> None:
    ran: list[str] = []
    registry = JobRegistry()

    async def every_round(_: Services) -> None:
        ran.append("every")

    async def every_other(_: Services) -> None:
        ran.append("other")

    async def broken(_: Services) -> None:
        raise RuntimeError("a chore that fails")

    registry.chore("broken", broken)
    registry.chore("every", every_round)
    registry.chore("other", every_other, every=2)
    workers = WorkerPool(rt, [], registry.chores)
    workers.start()
    try:
        async with asyncio.timeout(HOUSEKEEPING_SECONDS * 20):
            while ran.count("other") < 2:
                await asyncio.sleep(0.05)
    finally:
        await workers.stop()
    # Rounds 0, 1 and 2, each chore in its turn, the broken one before them every time.
    assert ran[:5] == ["every", "other", "every", "every", "other"]
