"""Turn an ``Authorization: Bearer`` header into the acting principal.

Verified keys are cached for a few seconds so the send path does not read the
database for every request; revocation therefore takes effect within
``api_key_cache_seconds`` in other processes (at once in this one).
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from tidings.accounts.models import AccountStatus, ApiKey
from tidings.accounts.service import (
    ancestry,
    below,
    effective_status,
    hash_key_secret,
    split_api_key,
)
from tidings.audit.service import Actor
from tidings.core.clock import Clock
from tidings.storage.db import SYSTEM, Database
from tidings.web.errors import Forbidden, NotFound, Unauthorized
from tidings.webhooks.subscriptions import Subscription

LAST_USED_RESOLUTION = timedelta(minutes=1)
ACCOUNT_ID = re.compile(r"acc_[0-9a-z]{26}")


@dataclass(frozen=True)
class Principal:
    key_id: str
    key_account_id: str  # the account that owns the key
    account_id: str  # the account acted upon: the key's own or one of its sub-accounts
    account_status: str
    webhooks: Subscription

    @property
    def actor(self) -> Actor:
        return Actor("api_key", self.key_id)

    @property
    def tenant(self) -> str:
        return self.account_id


class Authenticator:
    def __init__(self, db: Database, clock: Clock, *, cache_seconds: float) -> None:
        self._db, self._clock, self._ttl = db, clock, cache_seconds
        self._cache: dict[tuple[str, str | None], tuple[float, Principal]] = {}
        self._locks: defaultdict[tuple[str, str | None], asyncio.Lock] = defaultdict(
            asyncio.Lock)

    def invalidate(self) -> None:
        """Forget cached keys (after a revocation or an account change in this process)."""
        self._cache.clear()

    async def authenticate(self, authorization: str | None,
                           on_behalf_of: str | None = None) -> Principal:
        raw = bearer_token(authorization)
        cache_key = (hash_key_secret(raw), on_behalf_of)
        cached = self._cache.get(cache_key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        # One look-up per key at a time: when the cache expires under load, the other
        # requests wait for it instead of all reading (and touching) the key at once.
        async with self._locks[cache_key]:
            cached = self._cache.get(cache_key)
            if cached and cached[0] > time.monotonic():
                return cached[1]
            principal = await self._load(raw, on_behalf_of)
            self._cache[cache_key] = (time.monotonic() + self._ttl, principal)
        return principal

    async def _load(self, raw: str, on_behalf_of: str | None) -> Principal:
        parts = split_api_key(raw)
        if parts is None:
            raise Unauthorized("The API key is malformed.", code="invalid_api_key")
        async with self._db.transaction(tenant=SYSTEM, write=False) as session:
            key = await session.scalar(select(ApiKey).where(ApiKey.prefix == parts[0]))
            if key is None or not hmac.compare_digest(key.secret_hash, hash_key_secret(raw)):
                raise Unauthorized("The API key is not valid.", code="invalid_api_key")
            if key.revoked_at is not None:
                raise Unauthorized("The API key was revoked.", code="api_key_revoked")
            target = on_behalf_of or key.tenant_id
            if ACCOUNT_ID.fullmatch(target) is None:  # a NUL, say, must not reach a query
                raise NotFound(f"No account {target!r} below yours.", code="account_not_found")
            # Every account above the target counts, up to the root, not only those up
            # to the key's: a suspended parent holds back its sub-accounts' own keys too.
            chain = await ancestry(session, account_id=target)
            if not below(chain, key.tenant_id):
                raise NotFound(f"No account {target!r} below yours.", code="account_not_found")
            account, status = chain[0], effective_status(chain)
            principal = Principal(key.id, key.tenant_id, account.id, status,
                                  Subscription.of(account))
            stale = key.last_used_at is None or (
                self._clock.now() - key.last_used_at > LAST_USED_RESOLUTION)
        if status == AccountStatus.TERMINATED:
            raise Forbidden("The account is terminated.", code="account_terminated")
        if stale:
            await self._touch(key.id)
        return principal

    async def _touch(self, key_id: str) -> None:
        async with self._db.transaction(tenant=SYSTEM) as session:
            await session.execute(update(ApiKey).where(ApiKey.id == key_id)
                                  .values(last_used_at=self._clock.now()))


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.",
                           code="missing_api_key", headers={"WWW-Authenticate": "Bearer"})
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.",
                           code="missing_api_key", headers={"WWW-Authenticate": "Bearer"})
    return value.strip()
