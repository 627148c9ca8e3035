"""Which rule wins and in which order its connectors are tried."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from tidings.routing.rules import Route, RouteTarget, RoutingTable, connector_order, country_of

ACME = "acc_" + "a" * 26
GLOBEX = "acc_" + "g" * 26


def route(id_: str, *targets: str, **match: object) -> Route:
    return Route(id=id_, channel=str(match.pop("channel", "sms")),
                 targets=tuple(RouteTarget(t) for t in targets), **match)  # type: ignore[arg-type]


def plan(table: RoutingTable, to: str = "+447700900123", sender: str = "Acme",
         account: str = ACME, channel: str = "sms") -> list[str] | None:
    return table.plan(message_id="msg_1", channel=channel, to=to, sender=sender,
                      account_id=account)


def test_the_most_specific_rule_wins_between_equal_priorities() -> None:
    table = RoutingTable([
        route("r1", "everyone"),
        route("r2", "uk", prefix="+44"),
        route("r3", "uk-mobile", prefix="+447"),
        route("r4", "acme", account_id=ACME),
    ])
    assert plan(table) == ["acme"]
    assert plan(table, account=GLOBEX) == ["uk-mobile"]
    assert plan(table, to="+442071838750", account=GLOBEX) == ["uk"]
    assert plan(table, to="+12025550173", account=GLOBEX) == ["everyone"]


def test_a_lower_priority_number_beats_specificity() -> None:
    table = RoutingTable([route("r1", "uk", prefix="+44"),
                          route("r2", "override", priority=1)])
    assert plan(table) == ["override"]


def test_country_sender_and_channel_must_all_match() -> None:
    table = RoutingTable([route("r1", "gb", country="GB", sender="Acme")])
    assert plan(table) == ["gb"]
    assert plan(table, sender="Other") is None
    assert plan(table, to="+12025550173") is None
    assert plan(table, channel="whatsapp") is None
    assert table.routes_channel("sms")
    assert not table.routes_channel("whatsapp")


def test_country_of_reads_the_region_and_tolerates_garbage() -> None:
    assert country_of("+447700900123") == "GB"
    assert country_of("+12025550173") == "US"
    assert country_of("not a number") is None


def test_weights_split_first_choices_and_the_rest_follow_in_order() -> None:
    targets = (RouteTarget("a", 3), RouteTarget("b", 1), RouteTarget("backup", 0))
    firsts = Counter(connector_order(targets, f"msg_{i}")[0] for i in range(4_000))
    assert set(firsts) == {"a", "b"}  # weight 0 is never first
    assert 2.5 < firsts["a"] / firsts["b"] < 3.5
    assert connector_order(targets, "msg_x")[-1] == "backup"


def test_only_backups_keep_their_listed_order() -> None:
    targets = (RouteTarget("x", 0), RouteTarget("y", 0))
    assert connector_order(targets, "msg_1") == ["x", "y"]


@given(st.text(min_size=1, max_size=40))
def test_the_order_is_a_stable_permutation_of_the_targets(message_id: str) -> None:
    targets = (RouteTarget("a", 5), RouteTarget("b", 2), RouteTarget("c", 0))
    order = connector_order(targets, message_id)
    assert sorted(order) == ["a", "b", "c"]
    assert order == connector_order(targets, message_id)  # a retry asks the same first
