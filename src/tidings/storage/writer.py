"""Group commit: many requests' rows in one transaction, each answered once durable.

A commit costs a round trip and an fsync; paying it once per request caps the
send path. Requests hand their rows to the writer and wait; the writer takes
everything queued (up to ``max_rows``), inserts it table by table with one
statement each, commits, and then wakes every waiting request. If a merged
batch fails, each request is retried alone so one bad request fails alone.
On PostgreSQL the rows of each tenant are inserted under that tenant's
setting, so row-level security still checks them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.storage.bulk import insert_many
from tidings.storage.db import Base, Database, set_tenant_setting

# Parents before children, for the foreign keys.
TABLE_ORDER = ("messages", "message_events", "idempotency_keys", "webhook_deliveries", "jobs",
               "audit_events")


@dataclass
class Rows:
    """Rows to insert, by table name."""

    by_table: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        if table not in TABLE_ORDER:
            raise ValueError(f"the writer does not insert into {table}")
        self.by_table[table].extend(rows)

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.by_table.values())


@dataclass
class _Unit:
    tenant: str
    rows: Rows
    done: asyncio.Future[None]


async def write_rows(session: AsyncSession, rows: Rows) -> None:
    """Insert ``rows`` in the caller's transaction, parents first."""
    for table in TABLE_ORDER:
        batch = rows.by_table.get(table)
        if batch:
            await insert_many(session, Base.metadata.tables[table], batch)


class GroupWriter:
    def __init__(self, db: Database, *, max_rows: int = 20_000) -> None:
        self._db, self._max_rows = db, max_rows
        self._queue: asyncio.Queue[_Unit | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def write(self, tenant: str, rows: Rows) -> None:
        """Return once ``rows`` are committed; raise what the database raised."""
        if self._task is None:
            raise RuntimeError("the writer is not running")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Unit(tenant, rows, done))
        await asyncio.shield(done)  # a client hanging up must not cancel a shared commit

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            units, size, stopping = [first], len(first.rows), False
            while size < self._max_rows and not self._queue.empty():
                unit = self._queue.get_nowait()
                if unit is None:
                    stopping = True
                    break
                units.append(unit)
                size += len(unit.rows)
            await self._commit_all(units)
            if stopping:
                return

    async def _commit_all(self, units: list[_Unit]) -> None:
        try:
            await self._commit(units)
        except Exception as exc:
            if len(units) == 1:
                _settle(units[0], exc)
                return
            for unit in units:  # find the request at fault; the others still commit
                try:
                    await self._commit([unit])
                except Exception as single:
                    _settle(unit, single)
                else:
                    _settle(unit, None)
            return
        for unit in units:
            _settle(unit, None)

    async def _commit(self, units: list[_Unit]) -> None:
        by_tenant: dict[str, list[_Unit]] = defaultdict(list)
        for unit in units:
            by_tenant[unit.tenant].append(unit)
        # Tenant rows only: the tenant engine, set to each tenant in turn (the unit of
        # work sets the first), so row-level security checks every row it writes.
        first = next(iter(by_tenant))
        async with self._db.core(tenant=first) as session:
            for tenant, group in by_tenant.items():
                if tenant != first and not self._db.is_sqlite:
                    await set_tenant_setting(session, tenant)
                for table in TABLE_ORDER:
                    rows = [row for unit in group for row in unit.rows.by_table.get(table, ())]
                    if rows:
                        await insert_many(session, Base.metadata.tables[table], rows)


def _settle(unit: _Unit, error: BaseException | None) -> None:
    if unit.done.done():
        return
    if error is None:
        unit.done.set_result(None)
    else:
        unit.done.set_exception(error)
