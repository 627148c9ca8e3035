"""The policies' work for the workers: ``policies.notify``, written with the version it
tells of, tells every account (``notifying.py``), a chunk a transaction, then ends.

It is idempotent: a job run again (a crash, an expired lease) tells only the accounts
not told yet. There is no chore: whether a silent client has accepted follows from the
clock when it is read (``rules.state_of``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tidings.audit.service import Actor
from tidings.core.logs import get_logger
from tidings.jobs.outbox import ClaimedJob, complete
from tidings.jobs.registry import JobRegistry
from tidings.policies.notifying import notify_accounts
from tidings.policies.service import NOTIFY_JOB
from tidings.storage.db import SYSTEM

if TYPE_CHECKING:
    from tidings.core.services import Services

log = get_logger("tidings.policies")
_PUBLISHER_UNKNOWN = Actor("system", "policies")


async def notify_batch(rt: Services, jobs: Sequence[ClaimedJob]) -> None:
    for job in jobs:  # rare, and each may be long: one at a time
        told = await notify_accounts(rt, job.ref_id, actor=_publisher(job))
        async with rt.db.core(tenant=SYSTEM) as session:
            await complete(session, [job.id])
        log.info("policy_notified", version_id=job.ref_id, accounts=told)


def _publisher(job: ClaimedJob) -> Actor:
    """Who published: the mails' audit events name them."""
    payload = job.payload or {}
    kind, who = payload.get("actor_type"), payload.get("actor_id")
    return Actor(str(kind), str(who)) if kind and who else _PUBLISHER_UNKNOWN


def register(registry: JobRegistry) -> None:
    registry.job(NOTIFY_JOB, notify_batch)
