"""The connectors this process runs, by name.

The sandbox carrier is always there; the operator's connectors (SMPP, SMTP,
WhatsApp) are added and replaced while the process runs, when their
configuration changes. Which connector carries a message is the router's
choice (``tidings.routing``).
"""

from __future__ import annotations

from collections.abc import Sequence

from tidings.connectors.base import Connector, InboundSink, ReportSink, refuse_inbound


class ConnectorRegistry:
    def __init__(self, connectors: Sequence[Connector]) -> None:
        self._connectors = {c.name: c for c in connectors}
        self._sink: ReportSink | None = None
        self._inbound: InboundSink = refuse_inbound

    def all(self) -> list[Connector]:
        return list(self._connectors.values())

    def get(self, name: str) -> Connector | None:
        return self._connectors.get(name)

    def names_for_channel(self, channel: str) -> list[str]:
        """The default route of a channel no rule covers: its connectors, oldest first."""
        return [c.name for c in self._connectors.values() if channel in c.channels]

    async def start(self, sink: ReportSink, inbound: InboundSink = refuse_inbound) -> None:
        self._sink, self._inbound = sink, inbound
        for connector in self._connectors.values():
            await connector.start(sink, inbound)

    async def stop(self) -> None:
        for connector in reversed(self._connectors.values()):
            await connector.stop()
        self._sink = None

    async def replace(self, connector: Connector) -> None:
        """Run ``connector`` under its name, stopping the one it replaces."""
        await self.remove(connector.name)
        self._connectors[connector.name] = connector
        if self._sink is not None:
            await connector.start(self._sink, self._inbound)

    async def remove(self, name: str) -> None:
        old = self._connectors.pop(name, None)
        if old is not None and self._sink is not None:
            await old.stop()
