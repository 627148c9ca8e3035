"""Turn an ``Authorization: Bearer`` header into the acting principal.

Two credentials are bearer tokens: an API key (``tdk_…``, a program) and a session
token (``tds_…``, a person who logged in, ``users/sessions.py``). Either becomes a
``Principal``: the account acted upon and the permissions the caller holds in it (a
key's scopes; a user's role).

Verified credentials are cached for a few seconds so the send path does not read the
database for every request; revocation, log-out and a disabled user therefore take
effect within ``api_key_cache_seconds`` in other processes (at once in this one).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.key_limits import Network, key_networks, key_permissions
from tidings.accounts.models import AccountStatus, ApiKey
from tidings.accounts.permissions import Permission, Role, permissions_of
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
from tidings.users.sessions import (
    LAST_SEEN_RESOLUTION,
    SessionPolicy,
    is_session_token,
    load_session,
    touch_session,
)
from tidings.web.errors import Forbidden, NotFound, Unauthorized
from tidings.webhooks.subscriptions import Subscription

LAST_USED_RESOLUTION = timedelta(minutes=1)
ACCOUNT_ID = re.compile(r"acc_[0-9a-z]{26}")


@dataclass(frozen=True)
class Principal:
    """Who calls, the account acted upon, and what the caller may do there."""

    key_id: str  # the credential: an API key's id, or a session's id for a user
    key_account_id: str  # the account that owns the credential
    account_id: str  # the account acted upon: the key's own or one of its sub-accounts
    account_status: str
    webhooks: Subscription
    permissions: frozenset[Permission]
    user_id: str | None = None  # set for a person who logged in
    # What a person must do before anything else (users/sessions.py), if anything.
    gate: str | None = None
    allowed_networks: tuple[Network, ...] = ()  # empty: any address

    @property
    def actor(self) -> Actor:
        if self.user_id is not None:
            return Actor("user", self.user_id)
        return Actor("api_key", self.key_id)

    @property
    def tenant(self) -> str:
        return self.account_id

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions

    def admits(self, client_ip: str | None) -> bool:
        """Whether a request from ``client_ip`` may use this credential."""
        if not self.allowed_networks:
            return True
        try:
            address = ipaddress.ip_address(client_ip or "")
        except ValueError:
            return False
        return any(address in network for network in self.allowed_networks)


@dataclass(frozen=True)
class _Credential:
    """A verified credential before the account it acts on is resolved."""

    credential_id: str
    account_id: str
    permissions: frozenset[Permission]
    user_id: str | None = None
    gate: str | None = None
    networks: tuple[Network, ...] = ()


class Authenticator:
    def __init__(self, db: Database, clock: Clock, *, cache_seconds: float,
                 sessions: SessionPolicy) -> None:
        self._db, self._clock, self._ttl = db, clock, cache_seconds
        self._sessions = sessions
        self._cache: dict[tuple[str, str | None], tuple[float, Principal]] = {}
        self._locks: defaultdict[tuple[str, str | None], asyncio.Lock] = defaultdict(
            asyncio.Lock)

    def invalidate(self) -> None:
        """Forget cached credentials (after a change to a key, a user or an account in
        this process)."""
        self._cache.clear()

    async def authenticate(self, authorization: str | None, on_behalf_of: str | None = None,
                           *, client_ip: str | None = None) -> Principal:
        principal = await self._cached_or_loaded(bearer_token(authorization), on_behalf_of)
        if not principal.admits(client_ip):
            raise Forbidden("This API key may not be used from this address.",
                            code="ip_not_allowed")
        return principal

    async def _cached_or_loaded(self, raw: str, on_behalf_of: str | None) -> Principal:
        cache_key = (hash_key_secret(raw), on_behalf_of)
        cached = self._cache.get(cache_key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        # One look-up per credential at a time: when the cache expires under load, the
        # other requests wait for it instead of all reading (and touching) it at once.
        async with self._locks[cache_key]:
            cached = self._cache.get(cache_key)
            if cached and cached[0] > time.monotonic():
                return cached[1]
            principal = await self._load(raw, on_behalf_of)
            self._cache[cache_key] = (time.monotonic() + self._ttl, principal)
        return principal

    async def _load(self, raw: str, on_behalf_of: str | None) -> Principal:
        async with self._db.transaction(tenant=SYSTEM, write=False) as session:
            if is_session_token(raw):
                credential, stale = await self._user_credential(session, raw)
            else:
                credential, stale = await self._key_credential(session, raw)
            principal = await _principal(session, credential, on_behalf_of)
        if principal.account_status == AccountStatus.TERMINATED:
            raise Forbidden("The account is terminated.", code="account_terminated")
        if stale:
            await self._touch(credential)
        return principal

    async def _key_credential(self, session: AsyncSession,
                              raw: str) -> tuple[_Credential, bool]:
        parts = split_api_key(raw)
        if parts is None:
            raise Unauthorized("The API key is malformed.", code="invalid_api_key")
        key = await session.scalar(select(ApiKey).where(ApiKey.prefix == parts[0]))
        if key is None or not hmac.compare_digest(key.secret_hash, hash_key_secret(raw)):
            raise Unauthorized("The API key is not valid.", code="invalid_api_key")
        if key.revoked_at is not None:
            raise Unauthorized("The API key was revoked.", code="api_key_revoked")
        now = self._clock.now()
        if key.expires_at is not None and now >= key.expires_at:
            raise Unauthorized("The API key has expired.", code="api_key_expired")
        stale = key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION
        return _Credential(key.id, key.tenant_id, key_permissions(key),
                           networks=key_networks(key)), stale

    async def _user_credential(self, session: AsyncSession,
                               raw: str) -> tuple[_Credential, bool]:
        now = self._clock.now()
        user = await load_session(session, token=raw, now=now, policy=self._sessions)
        if user.account_id is None:
            raise Forbidden("The operator's staff act through the operator API.",
                            code="not_an_account_user")
        stale = now - user.last_seen_at > LAST_SEEN_RESOLUTION
        return _Credential(user.session_id, user.account_id, permissions_of(Role(user.role)),
                           user_id=user.user_id, gate=user.gate), stale

    async def _touch(self, credential: _Credential) -> None:
        now = self._clock.now()
        async with self._db.transaction(tenant=SYSTEM) as session:
            if credential.user_id is not None:
                await touch_session(session, session_id=credential.credential_id, now=now)
            else:
                await session.execute(update(ApiKey)
                                      .where(ApiKey.id == credential.credential_id)
                                      .values(last_used_at=now))


async def _principal(session: AsyncSession, credential: _Credential,
                     on_behalf_of: str | None) -> Principal:
    """The credential acting on its own account or, when named, one below it."""
    target = on_behalf_of or credential.account_id
    if ACCOUNT_ID.fullmatch(target) is None:  # a NUL, say, must not reach a query
        raise NotFound(f"No account {target!r} below yours.", code="account_not_found")
    # Every account above the target counts, up to the root, not only those up to the
    # credential's: a suspended parent holds back its sub-accounts' own keys too.
    chain = await ancestry(session, account_id=target)
    if not below(chain, credential.account_id):
        raise NotFound(f"No account {target!r} below yours.", code="account_not_found")
    account = chain[0]
    return Principal(credential.credential_id, credential.account_id, account.id,
                     effective_status(chain), Subscription.of(account),
                     credential.permissions, credential.user_id, credential.gate,
                     credential.networks)


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.",
                           code="missing_api_key", headers={"WWW-Authenticate": "Bearer"})
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.",
                           code="missing_api_key", headers={"WWW-Authenticate": "Bearer"})
    return value.strip()
