"""``GET /v1/operator/stats/traffic`` on both databases: the operator's only (a client's
key and a client's user are refused), garbage in any parameter a 400 that changes
nothing, JSON or CSV."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from tests.api.test_operator_api import ops  # noqa: F401 (the operator-key fixture)
from tests.conftest import Tenant, assert_problem
from tests.usage_stats.conftest import DAY, NOON, US, move_to, numbers, seed, settled, stored
from tests.users.people import person, session_headers
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime
from tidings.usage_stats.service import build_due

URL = "/v1/operator/stats/traffic"
ONE_DAY = {"from": "2027-03-10", "to": "2027-03-10"}


@pytest.fixture
async def built(rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    move_to(clock, NOON)
    await seed(rt, acme.id, numbers(US, 5), each=2)
    await seed(rt, acme.id, ["a@example.com", "b@example.com"], channel="email")
    move_to(clock, settled(DAY))
    await build_due(rt)


async def test_the_operator_reads_it_and_a_client_may_not(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, built: None,
        ops: dict[str, str]) -> None:  # noqa: F811
    assert (await client.get(URL, params=ONE_DAY)).status_code == 401
    refused = await client.get(URL, headers=acme.headers, params=ONE_DAY)
    assert refused.status_code in (401, 403), refused.text
    owner = await person(rt, acme.id, "owner", email="owner@acme.example")
    as_user = await client.get(URL, headers=await session_headers(rt, owner), params=ONE_DAY)
    assert_problem(as_user, 403, "not_operator_staff")
    shown = await client.get(URL, headers=ops, params=ONE_DAY)
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert (body["first_day"], body["last_day"], body["built_through"]) == (
        "2027-03-10", "2027-03-10", "2027-03-10")
    assert [(b["channel"], b["country"], b["messages"], b["subjects"])
            for b in body["buckets"]] == [("sms", "US", 10, 5)]  # e-mail: 2 people, hidden


async def test_by_default_the_30_days_before_today(
        client: httpx.AsyncClient, built: None, ops: dict[str, str]) -> None:  # noqa: F811
    body = (await client.get(URL, headers=ops)).json()  # today is 2027-03-14
    assert (body["first_day"], body["last_day"]) == ("2027-02-12", "2027-03-13")
    assert [b["day"] for b in body["buckets"]] == ["2027-03-10"]


@pytest.mark.parametrize(("params", "code"), [
    ({"from": "yesterday"}, "invalid_date"),
    ({"from": "2027-13-01"}, "invalid_date"),
    ({"from": "2027-3-1"}, "invalid_date"),
    ({"to": "20270310"}, "invalid_date"),
    ({"to": "2027-03-10T00:00"}, "invalid_date"),
    ({"from": "1700000000"}, "invalid_date"),
    ({"from": "2027-03-11", "to": "2027-03-10"}, "invalid_range"),
    ({"from": "2026-03-09", "to": "2027-03-10"}, "range_too_long"),
    ({"channel": "fax"}, "validation_failed"),
    ({"country": "us"}, "validation_failed"),
    ({"country": "USA"}, "validation_failed"),
    ({"country": "'; DROP TABLE service_stats; --"}, "validation_failed"),
    ({"tenant": "acc_x"}, "unknown_query_parameter"),
    ({"From": "2027-03-10"}, "unknown_query_parameter"),
])
async def test_garbage_is_a_400_and_changes_nothing(
        client: httpx.AsyncClient, rt: Runtime, built: None, ops: dict[str, str],  # noqa: F811
        params: dict[str, str], code: str) -> None:
    before = await stored(rt)
    assert_problem(await client.get(URL, headers=ops, params=params), 400, code)
    assert await stored(rt) == before


async def test_a_parameter_given_twice_is_a_400(
        client: httpx.AsyncClient, built: None, ops: dict[str, str]) -> None:  # noqa: F811
    answer = await client.get(URL, headers=ops, params=[("from", "2027-03-10"),
                                                        ("from", "2027-03-01")])
    assert_problem(answer, 400, "repeated_query_parameter")


async def test_366_days_are_allowed(client: httpx.AsyncClient, built: None,
                                    ops: dict[str, str]) -> None:  # noqa: F811
    answer = await client.get(URL, headers=ops, params={"from": "2026-03-10",
                                                        "to": "2027-03-10"})
    assert answer.status_code == 200, answer.text


async def test_csv_with_accept_text_csv(client: httpx.AsyncClient, built: None,
                                        ops: dict[str, str]) -> None:  # noqa: F811
    answer = await client.get(URL, headers={**ops, "Accept": "text/csv"}, params=ONE_DAY)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert "traffic-2027-03-10-2027-03-10.csv" in answer.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows == [["day", "channel", "direction", "country", "messages", "segments",
                     "delivered", "failed", "subjects"],
                    ["2027-03-10", "sms", "outbound", "US", "10", "10", "10", "0", "5"]]
