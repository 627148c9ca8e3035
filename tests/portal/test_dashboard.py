"""The dashboard as a person reads it: the tiles' counts and delivery rate, the charts'
statuses and channels, the failures by error code, each sub-account's month; who may
open it, and where ``/portal`` leads.

Messages go in through the API and the sandbox carrier settles them, so the page is
checked against what really happened, not against rows written for it.
"""

from __future__ import annotations

import html
import re

import httpx
import pytest

from tests.conftest import Tenant, make_tenant, settle
from tests.portal.pages import page_error, signed_in
from tests.users.people import person
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime

DELIVERS, FAILS, UNDELIVERS = "+12025550173", "+12025550101", "+12025550100"  # docs/sandbox.md
NO_RATE = "\u2013"  # the en dash the tiles show when no message has settled
RECEIPT = 10  # seconds: past the fixture's 5 s sandbox receipt delay
PERIODS = 3  # today, 7 days, 30 days: one tile each


async def send(client: httpx.AsyncClient, tenant: Tenant, to: str, count: int = 1) -> None:
    for _ in range(count):
        sent = await client.post("/v1/messages", headers=tenant.headers,
                                 json={"to": to, "from": "Acme", "body": "Hello"})
        assert sent.status_code == 201, sent.text


async def settled(rt: Runtime, clock: FakeClock) -> None:
    """Submitted to the sandbox carrier, then its receipts in."""
    await settle(rt, clock)
    await settle(rt, clock, seconds=RECEIPT)


async def dashboard(client: httpx.AsyncClient, rt: Runtime, tenant_id: str,
                    role: str = "owner") -> httpx.Response:
    await signed_in(client, rt, await person(rt, tenant_id, role))
    page = await client.get("/portal/dashboard")
    assert page.status_code == 200, page.text[:300]
    return page


def tiles(page: httpx.Response, stat: str) -> list[str]:
    """What each period's tile shows for ``stat`` (today, 7 days, 30 days)."""
    return [html.unescape(v) for v in re.findall(rf'data-stat="{stat}">([^<]*)<', page.text)]


def chart(page: httpx.Response, caption: str) -> dict[str, str]:
    """A chart's bars as label → the value written beside it."""
    figure = re.search(rf"<figcaption>{re.escape(caption)}</figcaption>(.*?)</figure>",
                       page.text, re.S)
    assert figure, f"no chart {caption!r}"
    bars = re.findall(r'class="label">([^<]*)</text>.*?class="value">([^<]*)</text>',
                      figure.group(1), re.S)
    return {html.unescape(label): value for label, value in bars}


def failures(page: httpx.Response) -> dict[str, tuple[str, str]]:
    """The failures table: error code → (its count, where its link leads)."""
    rows = re.findall(r'<tr><td><a href="([^"]*)"><code>([^<]*)</code></a></td>'
                      r'<td class="num">([^<]*)</td></tr>', page.text)
    return {code: (count, html.unescape(href)) for href, code, count in rows}


def subaccount_rows(page: httpx.Response) -> dict[str, tuple[str, str, str]]:
    """The sub-accounts table: id → (messages, failed, delivery rate)."""
    rows = re.findall(r'<small><code>(acc_[0-9a-z]+)</code></small></td>'
                      r'<td class="num">([^<]*)</td><td class="num">([^<]*)</td>'
                      r'<td class="num">([^<]*)</td>', page.text)
    return {sub: (total, failed, html.unescape(rate)) for sub, total, failed, rate in rows}


async def test_the_tiles_count_the_months_messages_and_the_delivery_rate(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    await send(client, acme, DELIVERS, 3)
    await send(client, acme, FAILS, 2)
    await send(client, acme, UNDELIVERS)
    await settled(rt, clock)
    page = await dashboard(client, rt, acme.id)
    assert tiles(page, "total") == ["6"] * PERIODS
    assert tiles(page, "delivered") == ["3"] * PERIODS
    assert tiles(page, "failed") == ["3"] * PERIODS
    assert tiles(page, "rate") == ["50.0 %"] * PERIODS


async def test_the_charts_name_each_status_and_channel(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    await send(client, acme, DELIVERS, 2)
    await send(client, acme, FAILS)
    await settled(rt, clock)
    await send(client, acme, DELIVERS)  # not yet submitted: still queued
    page = await dashboard(client, rt, acme.id)
    assert chart(page, "By status, last 30 days") == {"queued": "1", "delivered": "2",
                                                       "failed": "1"}
    assert chart(page, "By channel, last 30 days") == {"sms": "4"}


async def test_the_failures_table_counts_each_error_code_and_links_to_its_messages(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    await send(client, acme, FAILS, 2)
    await send(client, acme, UNDELIVERS)
    await send(client, acme, DELIVERS)
    await settled(rt, clock)
    page = await dashboard(client, rt, acme.id)
    assert failures(page) == {
        "sandbox_failed": ("2", "/portal/messages?error_code=sandbox_failed"),
        "sandbox_undelivered": ("1", "/portal/messages?error_code=sandbox_undelivered")}
    listed = await client.get("/portal/messages?error_code=sandbox_failed")
    assert listed.status_code == 200
    assert len(re.findall(r'<td><a href="/portal/messages/msg_', listed.text)) == 2


async def test_a_parent_sees_its_sub_accounts_month(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    child = await make_tenant(rt, "Acme Europe", parent=acme.id)
    await send(client, child, DELIVERS, 3)
    await send(client, child, FAILS)
    await send(client, acme, DELIVERS)
    await settled(rt, clock)
    page = await dashboard(client, rt, acme.id)
    assert "Acme Europe" in page.text
    assert subaccount_rows(page) == {child.id: ("4", "1", "75.0 %")}
    assert tiles(page, "total") == ["1"] * PERIODS  # the parent's own tiles: its messages


async def test_another_tenants_messages_never_count(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    await send(client, acme, DELIVERS)
    await send(client, globex, FAILS, 3)
    await send(client, globex, DELIVERS, 2)
    await settled(rt, clock)
    page = await dashboard(client, rt, acme.id)
    assert tiles(page, "total") == ["1"] * PERIODS
    assert tiles(page, "failed") == ["0"] * PERIODS
    assert tiles(page, "rate") == ["100.0 %"] * PERIODS
    assert failures(page) == {}
    assert globex.id not in page.text


async def test_an_empty_account_shows_zeros_and_no_rate(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    page = await dashboard(client, rt, acme.id, role="analyst")
    for stat in ("total", "delivered", "failed"):
        assert tiles(page, stat) == ["0"] * PERIODS
    assert tiles(page, "rate") == [NO_RATE] * PERIODS
    assert "No failures." in page.text
    assert chart(page, "By status, last 30 days") == {}


@pytest.mark.parametrize("role", ["developer", "billing", "compliance", "support"])
async def test_roles_without_reports_read_get_the_403_page(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, role: str) -> None:
    await signed_in(client, rt, await person(rt, acme.id, role))
    page = await client.get("/portal/dashboard")
    assert page.status_code == 403
    assert page_error(page) == "permission_denied"
    assert "data-stat" not in page.text


@pytest.mark.parametrize(("role", "landing"), [
    ("owner", "/portal/dashboard"), ("analyst", "/portal/dashboard"),
    ("support", "/portal/messages"), ("developer", "/portal/messages")])
async def test_the_portal_leads_each_role_to_its_first_page(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, role: str, landing: str) -> None:
    await signed_in(client, rt, await person(rt, acme.id, role))
    answer = await client.get("/portal")
    assert answer.status_code == 303
    assert answer.headers["location"] == landing
