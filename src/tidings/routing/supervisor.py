"""Run the operator's connectors: start what was added, restart what changed, stop what went.

The ``connectors`` table is the truth; this process reads it at start and every
``reload_seconds``, so a connector added with the CLI or the operator API comes
up in the worker without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from pathlib import Path

from tidings.connectors.registry import ConnectorRegistry
from tidings.db import SYSTEM, Database
from tidings.logs import get_logger
from tidings.routing.factory import build_connector
from tidings.routing.models import ConnectorConfig
from tidings.routing.service import OPERATOR_KEYRING, connector_secrets, list_connectors
from tidings.vault import Vault

log = get_logger("tidings.connectors")


class ConnectorSupervisor:
    def __init__(self, db: Database, vault: Vault, registry: ConnectorRegistry, *,
                 reload_seconds: float, data_dir: Path) -> None:
        self._db, self._vault, self._registry = db, vault, registry
        self._data_dir = data_dir
        self._reload_seconds = reload_seconds
        self._running: dict[str, tuple[str, datetime]] = {}  # name -> (id, updated_at)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.reload()
        self._task = asyncio.create_task(self._loop(), name="connector-supervisor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for name in list(self._running):
            await self._registry.remove(name)
        self._running.clear()

    async def reload(self) -> None:
        async with self._db.transaction(tenant=SYSTEM, write=False) as session:
            rows = [r for r in await list_connectors(session) if r.enabled]
        wanted = {r.name: r for r in rows}
        for name in [n for n in self._running if n not in wanted]:
            await self._registry.remove(name)
            del self._running[name]
            log.info("connector_stopped", connector=name)
        for row in rows:
            if self._running.get(row.name) != (row.id, row.updated_at):
                await self._start(row)

    async def _start(self, row: ConnectorConfig) -> None:
        keys = await self._vault.keys_for(OPERATOR_KEYRING)
        try:
            connector = build_connector(row, connector_secrets(keys, row),
                                        data_dir=self._data_dir)
        except ValueError as exc:
            log.error("connector_not_started", connector=row.name, error=str(exc))
            return
        await self._registry.replace(connector)
        self._running[row.name] = (row.id, row.updated_at)
        log.info("connector_started", connector=row.name, kind=row.kind)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._reload_seconds)
            try:
                await self.reload()
            except Exception:
                log.exception("connector_reload_failed")
