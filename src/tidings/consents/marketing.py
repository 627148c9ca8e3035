"""Marketing consent on the send path: who, on which channel, may be sent marketing.

``MarketingConsents`` keeps each account's people with marketing consent in force
(their subject tokens, by channel) for ``cache_seconds``, as ``privacy/restrictions.py``
keeps the restricted ones: the send path matches a message's ``to_index`` against it
with no database read and no extra HMAC. A change this process commits applies at once
(``consents_changed``, called after the commit, tells every cache in the process); one
committed by another process within the cache's seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

from tidings.consents.service import marketing_consents
from tidings.core.ttl_cache import KeyedTtlCache
from tidings.privacy.subjects import subject_index
from tidings.storage.db import Database
from tidings.storage.vault import TenantKeys

__all__ = ["MarketingConsents", "consents_changed"]

Consented = dict[str, frozenset[str]]

# Per account, how many changes this process has committed: a cache that loaded before
# the latest loads again. A counter, not a call to each cache: the caches are the
# runtime's, and the code that records an event does not know them.
_changes: dict[str, int] = {}


def consents_changed(tenant: str) -> None:
    """Call after committing a change to ``tenant``'s consent events."""
    _changes[tenant] = _changes.get(tenant, 0) + 1


class MarketingConsents:
    """Each account's subject tokens with marketing consent in force, by channel."""

    def __init__(self, db: Database, *, cache_seconds: float) -> None:
        self._db = db
        self._cache: KeyedTtlCache[str, Consented] = KeyedTtlCache(self._load,
                                                                   ttl=cache_seconds)
        self._loaded_after: dict[str, int] = {}  # the change count each load saw

    async def _load(self, tenant: str) -> Consented:
        # Counted before the read: a change committed while it runs makes it stale.
        self._loaded_after[tenant] = _changes.get(tenant, 0)
        async with self._db.transaction(tenant=tenant, write=False) as session:
            return await marketing_consents(session, tenant)

    def invalidate(self, tenant: str) -> None:
        self._cache.forget(tenant)

    async def of(self, tenant: str) -> Consented:
        seen = self._loaded_after.get(tenant)
        if seen is not None and seen != _changes.get(tenant, 0):
            self.invalidate(tenant)
        return await self._cache.get(tenant)

    async def which(self, keys: TenantKeys, channel: str,
                    addresses: Sequence[str]) -> list[bool]:
        """Whether each address (normalised) has marketing consent on ``channel``."""
        consented = (await self.of(keys.tenant_id)).get(channel)
        if not consented:
            return [False] * len(addresses)
        return [subject_index(keys, address) in consented for address in addresses]
