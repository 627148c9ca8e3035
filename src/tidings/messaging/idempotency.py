"""``Idempotency-Key``: the same key and body give the same answer; another body, 409.

A record keeps only a *keyed* fingerprint of the request: HMAC under the tenant's
index key of the SHA-256 of the canonical body and the endpoint. A plain hash of
a request is a dictionary attack away from its phone number (a few hundred
guesses); the keyed one cannot be recomputed from the database alone, and not at
all once the tenant's keys are destroyed.

A record is kept for ``WINDOW`` (24 hours, as the major APIs keep theirs), then pruned:
a batch's answer names its recipients, and nothing should keep them longer than a
retry needs. Within the window, erasing or rectifying a person rewrites the answers
that name them (``rewrite_recipient``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.messaging.models import IdempotencyKey
from tidings.storage.db import SYSTEM, Database
from tidings.storage.vault import TenantKeys, Vault
from tidings.web.errors import Conflict

SINGLE_SEND = "POST /v1/messages"
BATCH_SEND = "POST /v1/messages/batch"
RESPONSE_FIELD = "idempotency_keys.response"  # the batch's answer, vault-encrypted
WINDOW = timedelta(hours=24)
_PRUNE_CHUNK = 1000


def fingerprint(keys: TenantKeys, payload: dict[str, Any], *, endpoint: str) -> str:
    """The keyed fingerprint of a request to ``endpoint`` (another endpoint: another one)."""
    return _keyed(keys, _plain_digest(payload), endpoint=endpoint)


def _plain_digest(payload: dict[str, Any]) -> str:
    # What records held before fingerprints were keyed, so those can be converted.
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _keyed(keys: TenantKeys, digest: str, *, endpoint: str) -> str:
    return keys.fingerprint(digest.encode(), purpose=f"idempotency:{endpoint}")


async def find_replay(session: AsyncSession, *, tenant: str, key: str,
                      request_hash: str) -> IdempotencyKey | None:
    """The record stored under ``key``, or None; 409 when the request differs."""
    row = await session.scalar(select(IdempotencyKey).where(
        IdempotencyKey.tenant_id == tenant, IdempotencyKey.key == key))
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise Conflict("This Idempotency-Key was used with a different request body.",
                       code="idempotency_key_reused")
    return row


async def remember(session: AsyncSession, *, tenant: str, key: str, request_hash: str,
                   now: datetime, message_id: str | None = None,
                   response_enc: bytes | None = None) -> None:
    """Store the record: a single send's message, or a batch's encrypted answer."""
    await session.execute(insert(IdempotencyKey), [{
        "tenant_id": tenant, "key": key, "request_hash": request_hash, "keyed": True,
        "message_id": message_id, "response_enc": response_enc, "created_at": now}])


async def key_legacy_fingerprints(db: Database, vault: Vault) -> int:
    """Key the plain SHA-256 fingerprints stored before they were keyed; how many.

    Those records were all single sends. Their plain digest is exactly what the
    keyed fingerprint is computed from, so a retry after the upgrade still
    replays. Runs at start-up; the ``keyed`` guard makes concurrent runs harmless.
    """
    async with db.transaction(tenant=SYSTEM, write=False) as session:  # usually none
        legacy = (await session.execute(
            select(IdempotencyKey.tenant_id, IdempotencyKey.key, IdempotencyKey.request_hash)
            .where(IdempotencyKey.keyed.is_(False)))).all()
    if not legacy:
        return 0
    async with db.transaction(tenant=SYSTEM) as session:
        for tenant, key, digest in legacy:
            keys = await vault.keys_for(tenant)
            await session.execute(update(IdempotencyKey).where(
                IdempotencyKey.tenant_id == tenant, IdempotencyKey.key == key,
                IdempotencyKey.keyed.is_(False),
            ).values(request_hash=_keyed(keys, digest, endpoint=SINGLE_SEND), keyed=True))
    return len(legacy)


async def prune(db: Database, *, now: datetime) -> int:
    """Delete the records older than ``WINDOW``, a thousand a transaction; how many."""
    pruned = 0
    while True:
        async with db.transaction(tenant=SYSTEM) as session:
            old = (await session.execute(
                select(IdempotencyKey.tenant_id, IdempotencyKey.key)
                .where(IdempotencyKey.created_at < now - WINDOW).limit(_PRUNE_CHUNK))).all()
            if old:
                await session.execute(delete(IdempotencyKey).where(
                    tuple_(IdempotencyKey.tenant_id, IdempotencyKey.key).in_(
                        [tuple(row) for row in old])))
        pruned += len(old)
        if len(old) < _PRUNE_CHUNK:
            return pruned


async def rewrite_recipient(session: AsyncSession, *, keys: TenantKeys, address: str,
                            replacement: str | None) -> int:
    """In the tenant's stored batch answers, put ``replacement`` (None: nothing) where
    a recipient was ``address``; how many answers changed. The answers are sealed, so
    each of the window's is opened: a day of one account's idempotent batches."""
    changed = 0
    rows = (await session.scalars(select(IdempotencyKey).where(
        IdempotencyKey.tenant_id == keys.tenant_id,
        IdempotencyKey.response_enc.is_not(None)))).all()
    for row in rows:
        assert row.response_enc is not None
        answer = orjson.loads(keys.decrypt(row.response_enc, field=RESPONSE_FIELD))
        hits = [r for r in answer.get("results", []) if r.get("to") == address]
        if not hits:
            continue
        for result in hits:
            result["to"] = replacement
        row.response_enc = keys.encrypt(orjson.dumps(answer).decode(), field=RESPONSE_FIELD)
        changed += 1
    return changed
