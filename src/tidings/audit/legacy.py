"""Chains sealed before chains were keyed: re-sealed once under the audit key, at start-up.

Such a chain was hashed with plain SHA-256, which anyone who can edit the
database can recompute. At the first start with keyed chains, each chain that
has no checkpoint yet is walked: intact under plain SHA-256, it is re-sealed
under the audit key (same events, same numbers, new hashes) and the re-sealing
is itself recorded as an audit event (``reseal`` of ``audit_events``); broken, it
is left as it is for ``tidings audit verify`` to report. Either way from then on
only keyed hashes vouch for it. The re-sealing vouches only that the chain was
intact *when it was re-sealed*: an edit made earlier and recomputed with plain
SHA-256 cannot be told apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.chain import AuditChain, unkeyed_digest
from tidings.audit.models import AuditEvent
from tidings.audit.service import (
    GENESIS,
    SEAL,
    SYSTEM_ACTOR,
    audit_row,
    lock_chain,
    record,
    sealed_events,
)
from tidings.core.logs import get_logger
from tidings.storage.bulk import execute_many
from tidings.storage.db import SYSTEM, Database

log = get_logger("tidings.audit")
Digest = Callable[[str, Any, int], str]


async def key_legacy_chains(db: Database, chain: AuditChain, *, now: datetime) -> list[str]:
    """Re-seal every unkeyed chain without a checkpoint; the tenants re-sealed."""
    async with db.transaction(tenant=SYSTEM, write=False) as session:
        tenants = set((await session.scalars(select(AuditEvent.tenant_id).where(
            AuditEvent.seq.is_not(None)).distinct())).all())
    unchecked = sorted(tenants - set(await chain.checkpoints(tenants)))
    resealed, heads = [], {}
    for tenant in unchecked:
        async with db.transaction(tenant=SYSTEM) as session:
            await lock_chain(db, session, tenant)
            events = await sealed_events(session, tenant)
            head = _head_if_intact(events, chain.digest)  # keyed, but not checkpointed yet
            if head is None and _head_if_intact(events, unkeyed_digest) is not None:
                head = await _reseal(session, chain, tenant, events, now=now)
                resealed.append(tenant)
            if head is None:
                log.error("audit_chain_broken_not_resealed", tenant=tenant)
                continue
            heads[tenant] = head
    await chain.advance(heads)
    return resealed


def _head_if_intact(events: Sequence[AuditEvent], digest: Digest) -> tuple[int, str] | None:
    prev = GENESIS
    for seq, event in enumerate(events, start=1):
        if event.seq != seq or event.prev_hash != prev or event.hash != digest(prev, event, seq):
            return None
        prev = event.hash
    return len(events), prev


async def _reseal(session: AsyncSession, chain: AuditChain, tenant: str,
                  events: Sequence[AuditEvent], *, now: datetime) -> tuple[int, str]:
    seals, prev = [], GENESIS
    for event in events:
        digest = chain.digest(prev, event, event.seq or 0)
        seals.append({"event_id": event.id, "new_seq": event.seq, "new_prev": prev,
                      "new_hash": digest})
        prev = digest
    await execute_many(session, SEAL, seals)
    await record(session, [audit_row(tenant=tenant, actor=SYSTEM_ACTOR, action="reseal",
                                     table="audit_events", row_id=tenant,
                                     fields=("hash", "prev_hash"), now=now)])
    log.info("audit_chain_resealed", tenant=tenant, events=len(events))
    return len(events), prev
