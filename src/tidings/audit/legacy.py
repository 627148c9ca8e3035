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

Re-sealing rewrites sealed events, which on PostgreSQL the runtime roles may not do
(migration 0021: a sealed event never changes); the schema's owner does it, connected
with ``TIDINGS_MIGRATE_DATABASE_URL``, and only when some chain needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
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
INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL's SQLSTATE, also raised by 0021's trigger


async def key_legacy_chains(db: Database, chain: AuditChain, *, now: datetime,
                            owner_url: str = "") -> list[str]:
    """Re-seal every unkeyed chain without a checkpoint; the tenants re-sealed.

    ``owner_url``: the schema owner's database (PostgreSQL), connected to only when some
    chain has no checkpoint; without it ``db``'s cross-tenant role tries, which migration
    0021 refuses when the roles are split.
    """
    unchecked = await _unchecked_tenants(db, chain)
    if not unchecked:
        return []
    owner = Database(owner_url) if owner_url and not db.is_sqlite else None
    try:
        return await _key_chains(owner or db, chain, unchecked, now=now)
    finally:
        if owner is not None:
            await owner.dispose()


async def _unchecked_tenants(db: Database, chain: AuditChain) -> list[str]:
    """Tenants with sealed events and no checkpoint: sealed before chains were keyed."""
    async with db.transaction(tenant=SYSTEM, write=False) as session:
        tenants = set((await session.scalars(select(AuditEvent.tenant_id).where(
            AuditEvent.seq.is_not(None)).distinct())).all())
    return sorted(tenants - set(await chain.checkpoints(tenants)))


async def _key_chains(db: Database, chain: AuditChain, tenants: Sequence[str], *,
                      now: datetime) -> list[str]:
    resealed, heads = [], {}
    for tenant in tenants:
        try:
            async with db.transaction(tenant=SYSTEM) as session:
                await lock_chain(db, session, tenant)
                events = await sealed_events(session, tenant)
                head = _head_if_intact(events, chain.digest)  # keyed, not checkpointed yet
                if head is None and _head_if_intact(events, unkeyed_digest) is not None:
                    head = await _reseal(session, chain, tenant, events, now=now)
                    resealed.append(tenant)
        except DBAPIError as refused:
            if getattr(refused.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
                raise
            # Going on would let the sealer checkpoint the unkeyed chain as it is.
            raise RuntimeError(
                f"the audit chain of {tenant} was sealed before chains were keyed and must "
                "be re-sealed, which only the schema's owner may do: start once with "
                "TIDINGS_MIGRATE_DATABASE_URL set (docs/privacy.md, audit trail)") from refused
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
