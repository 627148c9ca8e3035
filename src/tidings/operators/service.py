"""Create, revoke and check operator keys. Services flush, never commit."""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.service import hash_key_secret
from tidings.core.ids import new_id
from tidings.operators.models import OperatorKey
from tidings.web.errors import NotFound, Unauthorized

KEY_PREFIX = "tdo"
_OPERATOR_KEY = re.compile(rf"{KEY_PREFIX}_([0-9a-f]{{12}})_[A-Za-z0-9-]{{1,160}}")


@dataclass(frozen=True)
class NewOperatorKey:
    key: OperatorKey
    secret: str  # the whole key as the operator will send it; shown once


async def do_create_operator_key(session: AsyncSession, *, name: str,
                                 now: datetime) -> NewOperatorKey:
    prefix = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32).replace('_', 'A')}"
    key = OperatorKey(id=new_id("opk"), prefix=prefix, secret_hash=hash_key_secret(secret),
                      name=name or "default", created_at=now, revoked_at=None)
    session.add(key)
    return NewOperatorKey(key, secret)


async def do_revoke_operator_key(session: AsyncSession, *, key_id: str,
                                 now: datetime) -> OperatorKey:
    key = await session.get(OperatorKey, key_id)
    if key is None:
        raise NotFound(f"No operator key {key_id!r}.", code="operator_key_not_found")
    if key.revoked_at is None:
        key.revoked_at = now
    return key


async def list_operator_keys(session: AsyncSession) -> list[OperatorKey]:
    return list((await session.scalars(select(OperatorKey)
                                       .order_by(OperatorKey.created_at))).all())


async def check_operator_key(session: AsyncSession, raw: str) -> OperatorKey:
    """The key ``raw`` names, or Unauthorized."""
    match = _OPERATOR_KEY.fullmatch(raw)
    if match is None:
        raise Unauthorized("The operator key is malformed.", code="invalid_operator_key")
    key = await session.scalar(select(OperatorKey).where(OperatorKey.prefix == match.group(1)))
    if key is None or not hmac.compare_digest(key.secret_hash, hash_key_secret(raw)):
        raise Unauthorized("The operator key is not valid.", code="invalid_operator_key")
    if key.revoked_at is not None:
        raise Unauthorized("The operator key was revoked.", code="operator_key_revoked")
    return key
