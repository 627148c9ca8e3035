"""The audit chain's key and the checkpoints of each tenant's chain head.

An event's hash is ``HMAC-SHA256(audit key, prev_hash || canonical event)``. The
audit key is derived from the master key, so whoever can edit the database but
does not hold the master key cannot recompute a chain after changing it.

A keyed chain alone does not show that its *last* events (or all of them) were
deleted. So after each sealing the head of every chain (its last sequence
number and hash) is written to the key store, HMAC'd under the same key: a
checkpoint that an edit of the database alone cannot roll back.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tidings.storage.keystore import audit_checkpoints_table, insert_if_absent
from tidings.storage.vault import Vault

CHECKPOINTS = audit_checkpoints_table


def canonical(event: Any, seq: int) -> bytes:
    """What the chain covers of ``event`` (a row or an ``AuditEvent``) at ``seq``.

    The request id is covered only when the event has one: events sealed before it was
    recorded (migration 0021) have none, and hash exactly as they were sealed, so their
    chains still verify. Giving such an event a request id, or taking one away, changes
    what is hashed, so either shows as an altered event.
    """
    covered = {
        "tenant_id": event.tenant_id, "seq": seq, "actor_type": event.actor_type,
        "actor_id": event.actor_id, "action": event.action, "table_name": event.table_name,
        "row_id": event.row_id, "fields": event.fields,
        "created_at": event.created_at.isoformat(),
    }
    if event.request_id is not None:
        covered["request_id"] = event.request_id
    return orjson.dumps(covered, option=orjson.OPT_SORT_KEYS)


def unkeyed_digest(prev_hash: str, event: Any, seq: int) -> str:
    """The hash of chains sealed before they were keyed: plain SHA-256, no key."""
    return hashlib.sha256(prev_hash.encode() + canonical(event, seq)).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    authentic: bool  # its HMAC is the audit key's


class AuditChain:
    """Seals events under the audit key and keeps the chain heads in the key store."""

    def __init__(self, key: bytes, keystore: AsyncEngine) -> None:
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self._keystore = keystore

    @classmethod
    def of(cls, vault: Vault) -> AuditChain:
        return cls(vault.audit_key, vault.keystore)

    def digest(self, prev_hash: str, event: Any, seq: int) -> str:
        """The chain hash of ``event`` at position ``seq`` after ``prev_hash``."""
        return self._hmac(b"event\x00" + prev_hash.encode() + canonical(event, seq))

    def _checkpoint_mac(self, tenant: str, seq: int, head: str) -> str:
        return self._hmac(b"checkpoint\x00%s\x00%d\x00%s" % (tenant.encode(), seq,
                                                                head.encode()))

    def _hmac(self, data: bytes) -> str:
        mac = self._mac.copy()
        mac.update(data)
        return mac.hexdigest()

    async def checkpoints(self, tenants: Iterable[str] | None = None) -> dict[str, Checkpoint]:
        """The stored heads (of ``tenants``, or of every chain), their HMACs checked."""
        query = select(CHECKPOINTS.c.tenant_id, CHECKPOINTS.c.seq, CHECKPOINTS.c.hash,
                       CHECKPOINTS.c.mac)
        if tenants is not None:
            query = query.where(CHECKPOINTS.c.tenant_id.in_(list(tenants)))
        async with self._keystore.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {tenant: Checkpoint(seq, head, hmac.compare_digest(
                    mac, self._checkpoint_mac(tenant, seq, head)))
                for tenant, seq, head, mac in rows}

    async def advance(self, heads: Mapping[str, tuple[int, str]]) -> None:
        """Record new chain heads; a head never moves back (a slower sealer's is older)."""
        if not heads:
            return
        now = datetime.now(UTC)
        async with self._keystore.begin() as conn:
            for tenant, (seq, head) in heads.items():
                values = {"seq": seq, "hash": head, "updated_at": now,
                          "mac": self._checkpoint_mac(tenant, seq, head)}
                moved = await conn.execute(update(CHECKPOINTS).where(
                    CHECKPOINTS.c.tenant_id == tenant, CHECKPOINTS.c.seq < seq).values(values))
                if not moved.rowcount:
                    await conn.execute(insert_if_absent(
                        conn.dialect.name, {"tenant_id": tenant, **values}, CHECKPOINTS))
