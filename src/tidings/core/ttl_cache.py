"""Values loaded per key and kept for some seconds: what the send path reads on every
message (an account's rights, its restricted people) without a database round trip.

A change made in this process applies at once (``forget``, ``clear``); one made in
another process within ``ttl`` seconds. One load per key runs at a time: the callers
that find the value expired together wait for that one load.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class KeyedTtlCache(Generic[K, V]):
    def __init__(self, load: Callable[[K], Awaitable[V]], *, ttl: float) -> None:
        self._load, self._ttl = load, ttl
        self._cache: dict[K, tuple[float, V]] = {}
        self._locks: defaultdict[K, asyncio.Lock] = defaultdict(asyncio.Lock)

    def forget(self, key: K) -> None:
        self._cache.pop(key, None)

    def clear(self) -> None:
        self._cache.clear()

    async def get(self, key: K) -> V:
        cached = self._cache.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        async with self._locks[key]:
            cached = self._cache.get(key)
            if cached and cached[0] > time.monotonic():
                return cached[1]
            value = await self._load(key)
            self._cache[key] = (time.monotonic() + self._ttl, value)
        return value
