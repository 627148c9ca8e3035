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
from tidings.connectors.smpp.resolution import HOLD_SECONDS as UNKNOWN_HOLD_SECONDS
from tidings.core.logs import get_logger
from tidings.routing.factory import build_connector
from tidings.routing.models import ConnectorConfig
from tidings.routing.service import OPERATOR_KEYRING, connector_secrets, list_connectors
from tidings.storage.db import SYSTEM, Database
from tidings.storage.vault import TenantKeys, Vault

log = get_logger("tidings.connectors")


def connector_match_key(keys: TenantKeys, connector_id: str) -> bytes:
    """The key a connector's own store keys its digests with (the SMPP ledger's receipt
    match keys): derived from the operator keyring in the key store, one per connector,
    so the connector's file never holds it."""
    return bytes.fromhex(keys.fingerprint(connector_id.encode(),
                                          purpose="connector-match-key"))


class ConnectorSupervisor:
    def __init__(self, db: Database, vault: Vault, registry: ConnectorRegistry, *,
                 reload_seconds: float, data_dir: Path,
                 smpp_unknown_hold_seconds: float = UNKNOWN_HOLD_SECONDS) -> None:
        self._db, self._vault, self._registry = db, vault, registry
        self._data_dir = data_dir
        self._smpp_unknown_hold_seconds = smpp_unknown_hold_seconds
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
            connector = build_connector(
                row, connector_secrets(keys, row), data_dir=self._data_dir,
                match_key=connector_match_key(keys, row.id),
                smpp_unknown_hold_seconds=self._smpp_unknown_hold_seconds)
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
