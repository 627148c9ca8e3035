"""Submit messages along their routes, failing over to the next connector.

A connector that rejects a message permanently, or cannot take it at all (down,
not bound, not running here: ``retry`` with ``UNAVAILABLE``), hands the message
to the next connector of its route. Every failed attempt is returned so the
message's history can show it. A transient answer (``retry`` for any other
reason, e.g. throttling) ends the round: the dispatcher retries later, starting
again with the first connector.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from tidings.connectors.base import UNAVAILABLE, OutboundMessage, SubmitResult
from tidings.connectors.registry import ConnectorRegistry
from tidings.routing.rules import RoutingTable

NO_ROUTE = "no_route"
# Every connector of the plan waits on its sub-processor for this account.
NOT_EFFECTIVE = "subprocessor_not_effective"


@dataclass(frozen=True, slots=True)
class Attempt:
    connector: str
    result: SubmitResult


@dataclass(slots=True)
class Routed:
    """The outcome for one message: the final connector and answer, and what failed before."""

    message: OutboundMessage
    plan: list[str]
    step: int = 0
    failed: list[Attempt] = field(default_factory=list)
    result: SubmitResult | None = None

    @property
    def connector(self) -> str:
        return self.plan[self.step] if self.plan else "none"


def fails_over(result: SubmitResult) -> bool:
    return result.outcome == "rejected" or (
        result.outcome == "retry" and result.error_code == UNAVAILABLE)


class Router:
    def __init__(self, registry: ConnectorRegistry, table: RoutingTable, *,
                 now: datetime) -> None:
        self._registry = registry
        self._table = table
        self._now = now

    def plan(self, message: OutboundMessage, account_id: str) -> list[str] | None:
        if self._table.routes_channel(message.channel):
            return self._table.plan(message_id=message.message_id, channel=message.channel,
                                    to=message.to, sender=message.sender,
                                    account_id=account_id)
        return self._registry.names_for_channel(message.channel) or None

    def _routed(self, message: OutboundMessage, account_id: str) -> Routed:
        plan = self.plan(message, account_id) or []
        if not plan:
            return _refused(message, NO_ROUTE)
        if self._table.gated:
            plan = self._table.allowed(plan, account_id, self._now)
            if not plan:
                return _refused(message, NOT_EFFECTIVE)
        return Routed(message, plan)

    async def submit(self, messages: Sequence[tuple[OutboundMessage, str]]) -> list[Routed]:
        """Submit (message, account id) pairs; one ``Routed`` each, in input order."""
        routed = [self._routed(m, account) for m, account in messages]
        pending = [r for r in routed if r.result is None]
        while pending:
            await self._submit_step(pending)
            pending = [r for r in pending if r.result is None]
        return routed

    async def _submit_step(self, pending: Sequence[Routed]) -> None:
        groups: dict[str, list[Routed]] = defaultdict(list)
        for item in pending:
            groups[item.connector].append(item)
        answers = await asyncio.gather(*(self._submit_to(name, group)
                                         for name, group in groups.items()))
        for group, results in zip(groups.values(), answers, strict=True):
            for item, result in zip(group, results, strict=True):
                _advance(item, result)

    async def _submit_to(self, name: str, group: Sequence[Routed]) -> list[SubmitResult]:
        connector = self._registry.get(name)
        if connector is None:  # named by a rule but not running in this process
            return [SubmitResult(r.message.message_id, "retry", error_code=UNAVAILABLE)
                    for r in group]
        return await connector.submit([r.message for r in group])


def _refused(message: OutboundMessage, error_code: str) -> Routed:
    return Routed(message, [], result=SubmitResult(message.message_id, "rejected",
                                                   error_code=error_code))


def _advance(item: Routed, result: SubmitResult) -> None:
    if fails_over(result) and item.step + 1 < len(item.plan):
        item.failed.append(Attempt(item.connector, result))
        item.step += 1
    else:
        item.result = result
