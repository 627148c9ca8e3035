"""Record audit events on the hot path; seal them into a keyed hash chain off it.

Writers only append unsealed rows, so they never queue on a chain head. The
sealer gives each tenant's new events the next sequence numbers, in commit
order, with ``hash = HMAC(audit key, prev_hash || canonical event)``
(``audit.chain``), then checkpoints each chain's head in the key store.
Verification (``audit.verify``) never writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.chain import AuditChain, Checkpoint
from tidings.audit.models import AuditEvent
from tidings.core import request_ids
from tidings.core.logs import get_logger
from tidings.storage.bulk import execute_many, insert_many
from tidings.storage.db import SYSTEM, Database

AUDIT_EVENTS = cast(Table, AuditEvent.__table__)
GENESIS = "0" * 64
log = get_logger("tidings.audit")


@dataclass(frozen=True)
class Actor:
    """Who acted: an API key, a user, the operator's CLI, or the system itself."""

    type: str  # api_key, user, operator, system
    id: str


SYSTEM_ACTOR = Actor("system", "tidings")


def actor_label(actor: Actor, *, limit: int = 80) -> str:
    """``type:id``, as a row records who did something (``created_by``, ``lifted_by``)."""
    return f"{actor.type}:{actor.id}"[:limit]


def audit_row(*, tenant: str, actor: Actor, action: str, table: str, row_id: str,
              fields: Sequence[str], now: datetime) -> dict[str, Any]:
    """An audit event for a bulk insert: names of changed fields, never their values, and
    the request being served, if any (the API's ``X-Request-Id``, given or made)."""
    return {"tenant_id": tenant, "actor_type": actor.type, "actor_id": actor.id,
            "action": action, "table_name": table, "row_id": row_id,
            "fields": sorted(fields), "created_at": now, "request_id": request_ids.current()}


async def record(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await insert_many(session, AUDIT_EVENTS, rows)


async def seal_pending(db: Database, chain: AuditChain, *, limit: int = 5_000) -> int:
    """Chain unsealed events, tenant by tenant, then checkpoint the heads. How many."""
    async with db.transaction(tenant=SYSTEM, write=False) as session:
        tenants = list((await session.scalars(
            select(AuditEvent.tenant_id).where(AuditEvent.seq.is_(None)).distinct()
        )).all())
    if not tenants:
        return 0
    checkpoints = await chain.checkpoints(tenants)
    sealed, heads = 0, {}
    for tenant in tenants:
        async with db.transaction(tenant=SYSTEM) as session:
            await lock_chain(db, session, tenant)
            head = await _extendable_head(session, tenant, checkpoints.get(tenant))
            if head is None:
                continue
            count, heads[tenant] = await _seal_tenant(session, chain, tenant, head, limit=limit)
            sealed += count
    # After the commits: a checkpoint must never be ahead of the chain it vouches for.
    await chain.advance(heads)
    return sealed


async def lock_chain(db: Database, session: AsyncSession, tenant: str) -> None:
    """One writer per tenant chain at a time across processes (SQLite has one writer)."""
    if not db.is_sqlite:
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": tenant})


async def _chain_head(session: AsyncSession, tenant: str) -> tuple[int, str]:
    head = (await session.execute(
        select(AuditEvent.seq, AuditEvent.hash).where(
            AuditEvent.tenant_id == tenant, AuditEvent.seq.is_not(None))
        .order_by(AuditEvent.seq.desc()).limit(1)
    )).first()
    return (head[0] or 0, head[1] or GENESIS) if head else (0, GENESIS)


async def _extendable_head(session: AsyncSession, tenant: str,
                           checkpoint: Checkpoint | None) -> tuple[int, str] | None:
    """The chain's head, or None when it does not reach its checkpoint.

    Sealing new events on a chain whose last events were deleted would move the
    checkpoint past the gap and hide it; such a chain is left for ``verify``.
    """
    seq, head = await _chain_head(session, tenant)
    if checkpoint is None:
        return seq, head
    at_checkpoint = head if seq == checkpoint.seq else await session.scalar(
        select(AuditEvent.hash).where(AuditEvent.tenant_id == tenant,
                                      AuditEvent.seq == checkpoint.seq))
    if not checkpoint.authentic or at_checkpoint != checkpoint.hash:
        log.error("audit_chain_behind_checkpoint", tenant=tenant, checkpoint=checkpoint.seq,
                  head=seq)
        return None
    return seq, head


async def _seal_tenant(session: AsyncSession, chain: AuditChain, tenant: str,
                       head: tuple[int, str], *, limit: int) -> tuple[int, tuple[int, str]]:
    seq, prev = head
    pending = (await session.execute(
        select(*_CHAINED_COLUMNS).where(AuditEvent.tenant_id == tenant,
                                        AuditEvent.seq.is_(None))
        .order_by(AuditEvent.id).limit(limit)
    )).all()
    seals = []
    for event in pending:  # plain rows and one executemany: sealing runs beside the hot path
        seq += 1
        digest = chain.digest(prev, event, seq)
        seals.append({"event_id": event.id, "new_seq": seq, "new_prev": prev,
                      "new_hash": digest})
        prev = digest
    await execute_many(session, SEAL, seals)
    return len(pending), (seq, prev)


async def sealed_events(session: AsyncSession, tenant: str) -> Sequence[AuditEvent]:
    """The tenant's sealed events, in chain order."""
    return (await session.scalars(
        select(AuditEvent).where(AuditEvent.tenant_id == tenant, AuditEvent.seq.is_not(None))
        .order_by(AuditEvent.seq)
    )).all()


SEAL = update(AUDIT_EVENTS).where(AUDIT_EVENTS.c.id == bindparam("event_id")).values(
    seq=bindparam("new_seq"), prev_hash=bindparam("new_prev"), hash=bindparam("new_hash"))


_CHAINED_COLUMNS = (AuditEvent.id, AuditEvent.tenant_id, AuditEvent.actor_type,
                    AuditEvent.actor_id, AuditEvent.action, AuditEvent.table_name,
                    AuditEvent.row_id, AuditEvent.fields, AuditEvent.created_at,
                    AuditEvent.request_id)
