"""Routing rules: which connectors carry a message, in which order. Pure code.

A rule matches on channel and, optionally, on destination (an E.164 prefix or a
country), sender and account. The matching rule with the lowest ``priority``
wins; between equal priorities the more specific rule wins (account, then the
longest prefix, then country, then sender). Its targets are tried in this order:

* the first connector is drawn by weight among the targets with weight > 0, from
  a hash of the message id, so a retry after a crash asks the same connector
  first (and that connector's idempotency by message id holds);
* then the remaining targets in the order the rule lists them (weight 0 means
  "backup only").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import phonenumbers


@dataclass(frozen=True, slots=True)
class RouteTarget:
    connector: str
    weight: int = 1


@dataclass(frozen=True, slots=True)
class Route:
    id: str
    channel: str
    targets: tuple[RouteTarget, ...]
    priority: int = 100
    prefix: str | None = None  # "+44", "+1202"
    country: str | None = None  # ISO 3166-1 alpha-2, "GB"
    sender: str | None = None
    account_id: str | None = None

    def matches(self, *, channel: str, to: str, country: str | None, sender: str,
                account_id: str) -> bool:
        return (channel == self.channel
                and (self.prefix is None or to.startswith(self.prefix))
                and (self.country is None or country == self.country)
                and (self.sender is None or sender == self.sender)
                and (self.account_id is None or account_id == self.account_id))

    @property
    def specificity(self) -> tuple[bool, int, bool, bool]:
        return (self.account_id is not None, len(self.prefix or ""),
                self.country is not None, self.sender is not None)


def country_of(number: str) -> str | None:
    """The ISO region of an E.164 number, or None when it is not one.

    A number outside the known ranges (a test or fictional number, say) gets the
    main region of its country calling code, so "+44..." still routes as GB.
    """
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed) or (
        phonenumbers.region_code_for_country_code(parsed.country_code or 0))
    return region if region and region != phonenumbers.UNKNOWN_REGION else None


def connector_order(targets: Sequence[RouteTarget], message_id: str) -> list[str]:
    """The connectors to try for one message: a weighted first choice, then the rest."""
    if len(targets) == 1:  # the usual route: nothing to draw
        return [targets[0].connector]
    weighted = [t for t in targets if t.weight > 0]
    if not weighted:
        return [t.connector for t in targets]
    draw = int.from_bytes(hashlib.blake2b(message_id.encode(), digest_size=8).digest(), "big")
    point = draw % sum(t.weight for t in weighted)
    for target in weighted:
        if point < target.weight:
            first = target.connector
            break
        point -= target.weight
    return [first, *(t.connector for t in targets if t.connector != first)]


class Gate(Protocol):
    """Whether a connector may carry an account's messages at an instant (its
    sub-processor in effect for the account: ``subprocessors/gates.py``)."""

    def allows(self, account_id: str, now: datetime) -> bool: ...


class RoutingTable:
    """The operator's rules, ordered once; ``plan`` answers per message."""

    def __init__(self, routes: Iterable[Route], gates: Mapping[str, Gate] | None = None) -> None:
        self._routes = sorted(routes, key=lambda r: (r.priority, _negated(r.specificity), r.id))
        self._channels = frozenset(r.channel for r in self._routes)
        self._by_country = any(r.country for r in self._routes)
        self._gates = dict(gates or {})

    @property
    def gated(self) -> bool:
        """Whether any connector waits on its sub-processor (else ``allowed`` is moot)."""
        return bool(self._gates)

    def allowed(self, plan: Sequence[str], account_id: str, now: datetime) -> list[str]:
        """The connectors of ``plan`` that may carry this account's messages now."""
        gates = self._gates
        return [name for name in plan
                if (gate := gates.get(name)) is None or gate.allows(account_id, now)]

    def routes_channel(self, channel: str) -> bool:
        """Whether any rule exists for ``channel`` (without one, the default applies)."""
        return channel in self._channels

    def plan(self, *, message_id: str, channel: str, to: str, sender: str,
             account_id: str) -> list[str] | None:
        """Connectors to try in order; None when no rule matches."""
        country = country_of(to) if self._by_country else None
        for route in self._routes:
            if route.matches(channel=channel, to=to, country=country, sender=sender,
                             account_id=account_id):
                return connector_order(route.targets, message_id)
        return None


def _negated(specificity: tuple[bool, int, bool, bool]) -> tuple[int, ...]:
    return tuple(-int(part) for part in specificity)
