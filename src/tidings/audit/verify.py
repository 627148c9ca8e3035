"""Check every tenant's audit chain against the audit key and its checkpoint; never write.

A chain is intact when its events are numbered 1..n without a gap, each one's
hash is the audit key's HMAC over the one before, and it reaches its
checkpoint: the event at the checkpoint's number has the checkpoint's hash.
Events not sealed yet are counted, not judged: nothing vouches for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select

from tidings.audit.chain import AuditChain, Checkpoint, unkeyed_digest
from tidings.audit.models import AuditEvent
from tidings.audit.service import GENESIS, sealed_events
from tidings.storage.db import SYSTEM, Database


@dataclass
class ChainReport:
    tenants: int = 0
    sealed_events: int = 0
    unsealed_events: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(db: Database, chain: AuditChain, *, tenant: str | None = None) -> ChainReport:
    """Walk every chain (or one tenant's) and report the first break in each."""
    report = ChainReport()
    checkpoints = await chain.checkpoints(None if tenant is None else [tenant])
    async with db.transaction(tenant=SYSTEM, write=False) as session:
        query = select(AuditEvent.tenant_id).distinct()
        unsealed = select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None))
        if tenant:
            query = query.where(AuditEvent.tenant_id == tenant)
            unsealed = unsealed.where(AuditEvent.tenant_id == tenant)
        tenants = set((await session.scalars(query)).all()) | set(checkpoints)
        for tenant_id in sorted(tenants):
            report.tenants += 1
            events = await sealed_events(session, tenant_id)
            report.sealed_events += len(events)
            problem = (_first_break(chain, tenant_id, events)
                       or _checkpoint_problem(tenant_id, events, checkpoints.get(tenant_id)))
            if problem:
                report.problems.append(problem)
        report.unsealed_events = int((await session.scalar(unsealed)) or 0)
    return report


def _first_break(chain: AuditChain, tenant: str, events: Sequence[AuditEvent]) -> str | None:
    prev = GENESIS
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            return (f"{tenant}: event #{expected_seq} is missing "
                    "(deleted, or its chain fields were blanked)")
        if event.prev_hash != prev or event.hash != chain.digest(prev, event, expected_seq):
            if event.hash == unkeyed_digest(prev, event, expected_seq):
                return (f"{tenant}: event #{event.seq} (id {event.id}) is hashed without "
                        "the audit key (its chain was recomputed, or sealed before chains "
                        "were keyed and never started since)")
            return f"{tenant}: event #{event.seq} (id {event.id}) was altered"
        prev = event.hash
    return None


def _checkpoint_problem(tenant: str, events: Sequence[AuditEvent],
                        checkpoint: Checkpoint | None) -> str | None:
    if checkpoint is None:
        return None
    if not checkpoint.authentic:
        return f"{tenant}: the checkpoint of this chain was not written with the audit key"
    if not events:
        return (f"{tenant}: the whole chain is missing; its checkpoint vouches for "
                f"{checkpoint.seq} events")
    if len(events) < checkpoint.seq:
        return (f"{tenant}: the chain ends at event #{len(events)} but its checkpoint is at "
                f"#{checkpoint.seq}: its last events were deleted, or their chain fields "
                "blanked")
    if events[checkpoint.seq - 1].hash != checkpoint.hash:
        return f"{tenant}: event #{checkpoint.seq} does not match the checkpoint"
    return None
