"""``Idempotency-Key``: the same key and body give the same answer; another body, 409.

A record keeps only a *keyed* fingerprint of the request: HMAC under the tenant's
index key of the SHA-256 of the canonical body and the endpoint. A plain hash of
a request is a dictionary attack away from its phone number (a few hundred
guesses); the keyed one cannot be recomputed from the database alone, and not at
all once the tenant's keys are destroyed.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.messaging.models import IdempotencyKey
from tidings.storage.db import SYSTEM, Database
from tidings.storage.vault import TenantKeys, Vault
from tidings.web.errors import Conflict

SINGLE_SEND = "POST /v1/messages"
BATCH_SEND = "POST /v1/messages/batch"
RESPONSE_FIELD = "idempotency_keys.response"  # the batch's answer, vault-encrypted


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
