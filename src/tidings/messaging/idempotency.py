"""``Idempotency-Key``: the same key and body give the same message; another body, 409."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.errors import Conflict
from tidings.messaging.models import IdempotencyKey


def fingerprint(payload: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def find_replay(session: AsyncSession, *, tenant: str, key: str,
                      request_hash: str) -> str | None:
    """The message id stored under ``key``, or None; 409 when the body differs."""
    row = await session.scalar(select(IdempotencyKey).where(
        IdempotencyKey.tenant_id == tenant, IdempotencyKey.key == key))
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise Conflict("This Idempotency-Key was used with a different request body.",
                       code="idempotency_key_reused")
    return row.message_id


async def remember(session: AsyncSession, *, tenant: str, key: str, request_hash: str,
                   message_id: str, now: datetime) -> None:
    await session.execute(insert(IdempotencyKey), [{
        "tenant_id": tenant, "key": key, "request_hash": request_hash,
        "message_id": message_id, "created_at": now}])
