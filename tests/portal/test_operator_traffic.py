"""The console's Traffic page: staff only; the buckets of at least k people as a table
and two charts, the totals of what is shown; garbage in any filter shown beside it."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import Tenant
from tests.portal.pages import page_error, signed_in
from tests.usage_stats.conftest import (  # noqa: F401 (ids made at the fake clock's time)
    DAY,
    FR,
    NOON,
    US,
    ids_follow_the_clock,
    move_to,
    numbers,
    seed,
    settled,
)
from tests.users.people import Person, person
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime
from tidings.usage_stats.service import build_due

PAGE = "/operator/traffic"


async def staff(rt: Runtime) -> Person:
    return await person(rt, None, "operator", email="ops@tidings.example")


@pytest.fixture
async def built(rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    move_to(clock, NOON)
    await seed(rt, acme.id, numbers(US, 6), each=2)
    await seed(rt, acme.id, numbers(FR, 3))  # too few: hidden
    move_to(clock, settled(DAY))
    await build_due(rt)


async def test_staff_see_the_traffic_and_clients_do_not(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, built: None) -> None:
    assert (await client.get(PAGE)).status_code == 303  # to the log-in
    await signed_in(client, rt, await person(rt, acme.id, "owner"))
    refused = await client.get(PAGE)
    assert (refused.status_code, page_error(refused)) == (403, "not_operator_staff")
    client.cookies.clear()
    await signed_in(client, rt, await staff(rt))
    page = await client.get(PAGE, params={"from": "2027-03-10", "to": "2027-03-10"})
    assert page.status_code == 200, page.text
    assert 'href="/operator/traffic"' in page.text  # in the console's menu
    rows = re.findall(r'<tr data-bucket="([^"]+)">', page.text)
    assert rows == ["2027-03-10/sms/outbound/US"]  # FR's 3 people are not shown
    assert 'data-total="messages">12<' in page.text
    assert page.text.count('<svg class="chart"') == 2
    assert "fewer than 5 people" in page.text
    assert "FR" not in re.sub(r"<form.*?</form>", "", page.text, flags=re.S)


async def test_by_default_the_last_30_days(client: httpx.AsyncClient, rt: Runtime,
                                           built: None) -> None:
    await signed_in(client, rt, await staff(rt))
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert re.findall(r'<tr data-bucket="([^"]+)">', page.text) == [
        "2027-03-10/sms/outbound/US"]


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "garbage"}, "from"),
    ({"to": "2027-02-30"}, "to"),
    ({"channel": "fax"}, "channel"),
    ({"country": "usa"}, "country"),
    ({"from": "2027-03-11", "to": "2027-03-10"}, "from"),
    ({"from": "2025-01-01", "to": "2027-03-10"}, "to"),
    ({"from": "2027-03-10" + "x" * 5000}, "from"),
])
async def test_garbage_in_a_filter_is_shown_beside_it(
        client: httpx.AsyncClient, rt: Runtime, built: None, params: dict[str, str],
        field: str) -> None:
    await signed_in(client, rt, await staff(rt))
    page = await client.get(PAGE, params=params)
    assert page.status_code == 400
    assert re.search(rf'<p class="error" id="f-{field}-error" role="alert">', page.text), \
        page.text[-2000:]
    assert "data-bucket" not in page.text
