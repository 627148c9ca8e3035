"""``GET /v1/reports/messages``: counts of a recent period, one tenant's only."""

from __future__ import annotations

import httpx

from tests.conftest import Tenant, assert_problem, settle
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime

SEND = {"to": "+12025550173", "from": "Acme", "body": "Hello", "channel": "sms"}


async def test_a_report_counts_the_accounts_messages_by_status_and_channel(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    for _ in range(3):
        assert (await client.post("/v1/messages", headers=acme.headers,
                                  json=SEND)).status_code == 201
    await client.post("/v1/messages", headers=globex.headers, json=SEND)
    await settle(rt, clock)
    await settle(rt, clock, seconds=10)
    report = await client.get("/v1/reports/messages", headers=acme.headers,
                              params={"days": 7})
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["days"] == 7
    assert body["total"] == 3
    assert body["by_channel"] == {"sms": 3}
    assert body["by_status"] == {"delivered": 3}
    assert body["delivery_rate"] == 1.0
    assert body["failures_by_error_code"] == []


async def test_a_report_of_nothing_and_bad_periods(client: httpx.AsyncClient,
                                                   acme: Tenant) -> None:
    empty = (await client.get("/v1/reports/messages", headers=acme.headers)).json()
    assert (empty["total"], empty["delivery_rate"], empty["days"]) == (0, None, 30)
    for params in ({"days": 0}, {"days": 91}, {"days": "x"}, {"days": 30, "since": "now"}):
        assert_problem(await client.get("/v1/reports/messages", headers=acme.headers,
                                        params=params), 400,
                       "unknown_query_parameter" if "since" in params else "validation_failed")
