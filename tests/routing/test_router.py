"""Failover along a route: permanent rejects and unavailable connectors hand over."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from tidings.connectors.base import (
    UNAVAILABLE,
    InboundSink,
    OutboundMessage,
    ReportSink,
    SubmitResult,
    refuse_inbound,
)
from tidings.connectors.registry import ConnectorRegistry
from tidings.routing.router import NO_ROUTE, NOT_EFFECTIVE, Router
from tidings.routing.rules import Route, RouteTarget, RoutingTable
from tidings.subprocessors.gates import Gate

ACME = "acc_" + "a" * 26
GLOBEX = "acc_" + "g" * 26
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


class Scripted:
    """A connector answering every submit with one fixed outcome (a unit-test fake)."""

    channels = frozenset({"sms"})

    def __init__(self, name: str, outcome: str, error_code: str | None = None) -> None:
        self.name, self.outcome, self.error_code = name, outcome, error_code
        self.seen: list[str] = []

    async def start(self, sink: ReportSink, inbound: InboundSink = refuse_inbound) -> None:
        return None

    async def stop(self) -> None:
        return None

    def recorded(self, carrier_message_ids: Sequence[str]) -> None:
        return None

    async def submit(self, messages: Sequence[OutboundMessage]) -> list[SubmitResult]:
        self.seen += [m.message_id for m in messages]
        return [SubmitResult(m.message_id, self.outcome,  # type: ignore[arg-type]
                             carrier_message_id=f"{self.name}-{m.message_id}"
                             if self.outcome == "accepted" else None,
                             error_code=self.error_code) for m in messages]


def message(message_id: str, to: str = "+447700900123") -> OutboundMessage:
    return OutboundMessage(message_id, "sms", to, "Acme", "Hi", "GSM-7", 1)


def table(*names: str) -> RoutingTable:
    return RoutingTable([Route("r1", "sms", tuple(RouteTarget(n, 1 if i == 0 else 0)
                                                  for i, n in enumerate(names)))])


async def test_a_permanent_reject_fails_over_and_every_attempt_is_kept() -> None:
    a = Scripted("a", "rejected", "smpp:ESME_RINVDSTADR")
    b = Scripted("b", "retry", UNAVAILABLE)
    c = Scripted("c", "accepted")
    router = Router(ConnectorRegistry([a, b, c]), table("a", "b", "c"), now=NOW)
    [routed] = await router.submit([(message("m1"), ACME)])
    assert routed.connector == "c"
    assert routed.result is not None
    assert routed.result.outcome == "accepted"
    assert [(f.connector, f.result.error_code) for f in routed.failed] == [
        ("a", "smpp:ESME_RINVDSTADR"), ("b", UNAVAILABLE)]


async def test_a_transient_retry_does_not_fail_over() -> None:
    a = Scripted("a", "retry", "smpp:ESME_RTHROTTLED")
    b = Scripted("b", "accepted")
    [routed] = await Router(ConnectorRegistry([a, b]), table("a", "b"), now=NOW).submit(
        [(message("m1"), ACME)])
    assert routed.connector == "a"
    assert routed.result is not None
    assert routed.result.outcome == "retry"
    assert b.seen == []


async def test_the_last_answer_stands_when_every_connector_fails() -> None:
    a, b = Scripted("a", "rejected", "x"), Scripted("b", "rejected", "y")
    [routed] = await Router(ConnectorRegistry([a, b]), table("a", "b"), now=NOW).submit(
        [(message("m1"), ACME)])
    assert routed.result is not None
    assert routed.result.error_code == "y"
    assert len(routed.failed) == 1


async def test_a_connector_named_by_a_rule_but_not_running_is_unavailable() -> None:
    b = Scripted("b", "accepted")
    [routed] = await Router(ConnectorRegistry([b]), table("gone", "b"), now=NOW).submit(
        [(message("m1"), ACME)])
    assert routed.connector == "b"
    assert [f.result.error_code for f in routed.failed] == [UNAVAILABLE]


async def test_unmatched_messages_are_rejected_without_route_and_others_still_go() -> None:
    uk_only = RoutingTable([Route("r1", "sms", (RouteTarget("a"),), prefix="+44")])
    a = Scripted("a", "accepted")
    routed = await Router(ConnectorRegistry([a]), uk_only, now=NOW).submit(
        [(message("m1"), ACME), (message("m2", to="+12025550173"), ACME)])
    assert [r.result.outcome for r in routed if r.result] == ["accepted", "rejected"]
    assert routed[1].result is not None
    assert routed[1].result.error_code == NO_ROUTE
    assert a.seen == ["m1"]


async def test_without_rules_for_a_channel_its_connectors_carry_it_in_order() -> None:
    a, b = Scripted("a", "rejected", "x"), Scripted("b", "accepted")
    [routed] = await Router(ConnectorRegistry([a, b]), RoutingTable([]), now=NOW).submit(
        [(message("m1"), ACME)])
    assert routed.connector == "b"


def gated(gate: Gate, *names: str) -> RoutingTable:
    return RoutingTable([Route("r1", "sms", tuple(RouteTarget(n, 1 if i == 0 else 0)
                                                  for i, n in enumerate(names)))],
                        {names[0]: gate})


async def test_a_connector_whose_subprocessor_is_not_yet_effective_is_skipped() -> None:
    a, b = Scripted("a", "accepted"), Scripted("b", "accepted")
    gate = Gate("sub_x", NOW + timedelta(seconds=1))
    [routed] = await Router(ConnectorRegistry([a, b]), gated(gate, "a", "b"),
                            now=NOW).submit([(message("m1"), ACME)])
    assert (routed.connector, routed.plan, a.seen) == ("b", ["b"], [])
    [routed] = await Router(ConnectorRegistry([a, b]), gated(gate, "a", "b"),
                            now=NOW + timedelta(seconds=1)).submit([(message("m2"), ACME)])
    assert (routed.connector, a.seen) == ("a", ["m2"])


async def test_a_message_only_gated_connectors_could_carry_is_rejected_not_sent() -> None:
    a = Scripted("a", "accepted")
    for gate in (Gate("sub_x", None),  # proposed or retired
                 Gate("sub_x", NOW - timedelta(days=1), kept_off=frozenset({ACME})),
                 Gate("sub_x", NOW - timedelta(days=1), later={ACME: NOW + timedelta(hours=1)})):
        [routed] = await Router(ConnectorRegistry([a]), gated(gate, "a"),
                                now=NOW).submit([(message("m1"), ACME)])
        assert routed.result is not None
        assert (routed.result.outcome, routed.result.error_code) == ("rejected", NOT_EFFECTIVE)
    assert a.seen == []
    # Another account, neither kept off nor told late, goes through the same gate.
    [routed] = await Router(ConnectorRegistry([a]), gated(
        Gate("sub_x", NOW - timedelta(days=1), later={ACME: NOW + timedelta(hours=1)},
             kept_off=frozenset({"acc_other"})), "a"), now=NOW).submit([(message("m2"), GLOBEX)])
    assert a.seen == ["m2"]
