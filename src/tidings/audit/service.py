"""Record audit events on the hot path; seal them into a hash chain off it.

Writers only append unsealed rows, so they never queue on a chain head. The
sealer gives each tenant's new events the next sequence numbers, in commit
order, with ``hash = sha256(prev_hash || canonical event)``. Changing,
removing or reordering a sealed event breaks ``verify``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.models import AuditEvent
from tidings.bulk import execute_many, insert_many
from tidings.db import SYSTEM, Database

AUDIT_EVENTS = cast(Table, AuditEvent.__table__)
GENESIS = "0" * 64


@dataclass(frozen=True)
class Actor:
    """Who acted: an API key, a user, the operator's CLI, or the system itself."""

    type: str  # api_key, user, operator, system
    id: str


SYSTEM_ACTOR = Actor("system", "tidings")


def audit_row(*, tenant: str, actor: Actor, action: str, table: str, row_id: str,
              fields: Sequence[str], now: datetime) -> dict[str, Any]:
    """An audit event for a bulk insert: names of changed fields, never their values."""
    return {"tenant_id": tenant, "actor_type": actor.type, "actor_id": actor.id,
            "action": action, "table_name": table, "row_id": row_id,
            "fields": sorted(fields), "created_at": now}


async def record(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await insert_many(session, AUDIT_EVENTS, rows)


def event_digest(prev_hash: str, event: Any, seq: int) -> str:
    """The chain hash of ``event`` (a row or an ``AuditEvent``) at position ``seq``."""
    canonical = orjson.dumps({
        "tenant_id": event.tenant_id, "seq": seq, "actor_type": event.actor_type,
        "actor_id": event.actor_id, "action": event.action, "table_name": event.table_name,
        "row_id": event.row_id, "fields": event.fields,
        "created_at": event.created_at.isoformat(),
    }, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + canonical).hexdigest()


async def seal_pending(db: Database, *, limit: int = 5_000) -> int:
    """Chain unsealed events, tenant by tenant. Returns how many were sealed."""
    async with db.transaction(tenant=SYSTEM, write=False) as session:
        tenants = list((await session.scalars(
            select(AuditEvent.tenant_id).where(AuditEvent.seq.is_(None)).distinct()
        )).all())
    sealed = 0
    for tenant in tenants:
        async with db.transaction(tenant=SYSTEM) as session:
            sealed += await _seal_tenant(session, tenant, limit=limit, lock=not db.is_sqlite)
    return sealed


async def _seal_tenant(session: AsyncSession, tenant: str, *, limit: int, lock: bool) -> int:
    if lock:  # one sealer per tenant chain at a time across processes
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": tenant})
    head = (await session.execute(
        select(AuditEvent.seq, AuditEvent.hash).where(
            AuditEvent.tenant_id == tenant, AuditEvent.seq.is_not(None))
        .order_by(AuditEvent.seq.desc()).limit(1)
    )).first()
    seq: int = (head[0] or 0) if head else 0
    prev: str = (head[1] or GENESIS) if head else GENESIS
    pending = (await session.execute(
        select(*_CHAINED_COLUMNS).where(AuditEvent.tenant_id == tenant,
                                        AuditEvent.seq.is_(None))
        .order_by(AuditEvent.id).limit(limit)
    )).all()
    seals = []
    for event in pending:  # plain rows and one executemany: sealing runs beside the hot path
        seq += 1
        digest = event_digest(prev, event, seq)
        seals.append({"event_id": event.id, "new_seq": seq, "new_prev": prev,
                      "new_hash": digest})
        prev = digest
    await execute_many(session, _SEAL, seals)
    return len(pending)


_SEAL = update(AUDIT_EVENTS).where(AUDIT_EVENTS.c.id == bindparam("event_id")).values(
    seq=bindparam("new_seq"), prev_hash=bindparam("new_prev"), hash=bindparam("new_hash"))


_CHAINED_COLUMNS = (AuditEvent.id, AuditEvent.tenant_id, AuditEvent.actor_type,
                    AuditEvent.actor_id, AuditEvent.action, AuditEvent.table_name,
                    AuditEvent.row_id, AuditEvent.fields, AuditEvent.created_at)


@dataclass
class ChainReport:
    tenants: int = 0
    sealed_events: int = 0
    unsealed_events: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(db: Database, *, tenant: str | None = None) -> ChainReport:
    """Walk every chain (or one tenant's) and report the first break in each."""
    report = ChainReport()
    async with db.transaction(tenant=SYSTEM, write=False) as session:
        query = select(AuditEvent.tenant_id).distinct()
        if tenant:
            query = query.where(AuditEvent.tenant_id == tenant)
        for tenant_id in (await session.scalars(query)).all():
            report.tenants += 1
            await _verify_tenant(session, tenant_id, report)
        unsealed = select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None))
        if tenant:
            unsealed = unsealed.where(AuditEvent.tenant_id == tenant)
        report.unsealed_events = int((await session.scalar(unsealed)) or 0)
    return report


async def _verify_tenant(session: AsyncSession, tenant: str, report: ChainReport) -> None:
    events = (await session.scalars(
        select(AuditEvent).where(AuditEvent.tenant_id == tenant, AuditEvent.seq.is_not(None))
        .order_by(AuditEvent.seq)
    )).all()
    prev = GENESIS
    for expected_seq, event in enumerate(events, start=1):
        report.sealed_events += 1
        if event.seq != expected_seq:
            report.problems.append(f"{tenant}: event #{expected_seq} is missing")
            return
        if event.prev_hash != prev or event.hash != event_digest(prev, event, expected_seq):
            report.problems.append(f"{tenant}: event #{event.seq} (id {event.id}) was altered")
            return
        prev = event.hash
