"""The connectors this process runs, and which one carries each channel.

Routing rules (by destination, sender, account, with failover) build on this.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

from tidings.connectors.base import Connector, OutboundMessage, ReportSink, SubmitResult


class ConnectorRegistry:
    def __init__(self, connectors: Sequence[Connector]) -> None:
        self._connectors = list(connectors)

    @property
    def channels(self) -> frozenset[str]:
        return frozenset(ch for c in self._connectors for ch in c.channels)

    def all(self) -> list[Connector]:
        return list(self._connectors)

    def for_channel(self, channel: str) -> Connector | None:
        return next((c for c in self._connectors if channel in c.channels), None)

    async def start(self, sink: ReportSink) -> None:
        for connector in self._connectors:
            await connector.start(sink)

    async def stop(self) -> None:
        for connector in reversed(self._connectors):
            await connector.stop()

    async def submit(self, messages: Sequence[OutboundMessage]
                     ) -> list[tuple[str, SubmitResult]]:
        """Submit each message through its channel's connector; (connector, result) pairs."""
        groups: dict[str, list[OutboundMessage]] = defaultdict(list)
        unroutable = []
        for message in messages:
            connector = self.for_channel(message.channel)
            if connector is None:
                unroutable.append(("none", SubmitResult(message.message_id, "rejected",
                                                        error_code="no_route")))
            else:
                groups[connector.name].append(message)
        by_name = {c.name: c for c in self._connectors}
        answers = await asyncio.gather(*(by_name[n].submit(batch) for n, batch in groups.items()))
        results = [(name, r) for name, batch in zip(groups, answers, strict=True) for r in batch]
        return results + unroutable
