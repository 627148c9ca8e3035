"""The routing table as the dispatcher sees it: read from the database, kept briefly.

A change by the operator (CLI or API, in any process) takes effect within
``ttl_seconds``; in the process that made it at once (``invalidate``).
"""

from __future__ import annotations

import asyncio
import time

from tidings.routing.rules import RoutingTable
from tidings.routing.service import load_routing_table
from tidings.storage.db import SYSTEM, Database


class RoutingCache:
    def __init__(self, *, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._table: RoutingTable | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._expires = 0.0

    async def table(self, db: Database) -> RoutingTable:
        if self._table is not None and time.monotonic() < self._expires:
            return self._table
        async with self._lock:
            if self._table is None or time.monotonic() >= self._expires:
                async with db.transaction(tenant=SYSTEM, write=False) as session:
                    self._table = await load_routing_table(session)
                self._expires = time.monotonic() + self._ttl
        return self._table
