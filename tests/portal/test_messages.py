"""The message log and a message's page as a person reads them: newest first a page at a
time, each filter narrowing and refusing what it cannot read (next to the filter, with
nothing listed), numbers and bodies as the role may see them, the timeline and its
webhook attempts, the refresh that stops once the message is final, and no way into
another tenant's messages.
"""

from __future__ import annotations

import asyncio
import html
import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_ACTOR, HookServer, Tenant, make_tenant, settle
from tests.portal.pages import page_error, signed_in
from tests.users.people import person
from tidings.core.clock import FakeClock
from tidings.portal.pages.messages import PAGE_SIZE
from tidings.privacy.erasure import erase_subject
from tidings.runtime import Runtime

NUMBER, OTHER_NUMBER = "+12025550188", "+12025550174"  # not the pages' example number
FAILS = "+12025550101"  # docs/sandbox.md: sent, then failed (sandbox_failed)
RECEIPT = 10  # seconds: past the fixture's 5 s sandbox receipt delay
DAY = 86_400
ROW = re.compile(
    r'<tr>\s*<td><a href="/portal/messages/(msg_[0-9a-z]{26})(?:\?[^"]*)?">[^<]*</a></td>\s*'
    r'<td><span class="status ([a-z_]+)">[^<]*</span></td>\s*'
    r"<td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>")


@dataclass(frozen=True)
class Row:
    id: str
    status: str
    channel: str
    to: str
    sender: str


async def send(client: httpx.AsyncClient, tenant: Tenant, to: str = NUMBER,
               **extra: Any) -> str:
    sent = await client.post("/v1/messages", headers=tenant.headers,
                             json={"to": to, "from": "Acme", "body": "Secret words", **extra})
    assert sent.status_code == 201, sent.text
    message_id: str = sent.json()["id"]
    await asyncio.sleep(0.002)  # ids order by creation at millisecond resolution
    return message_id


async def settled(rt: Runtime, clock: FakeClock) -> None:
    await settle(rt, clock)
    await settle(rt, clock, seconds=RECEIPT)


def rows(page: httpx.Response) -> list[Row]:
    return [Row(*(html.unescape(cell) for cell in found)) for found in ROW.findall(page.text)]


def ids(page: httpx.Response) -> list[str]:
    return [row.id for row in rows(page)]


def older_link(page: httpx.Response) -> str | None:
    found = re.search(r'<a class="button" rel="next" href="([^"]+)">Older messages</a>',
                      page.text)
    return html.unescape(found.group(1)) if found else None


def filter_error(page: httpx.Response, name: str) -> str | None:
    """The error shown inside the filter field named ``name`` (a select or an input)."""
    for block in re.findall(r'<div class="field invalid">(.*?)</div>', page.text, re.S):
        if f'name="{name}"' in block:
            found = re.search(r'<p class="error"[^>]*>([^<]*)</p>', block)
            return html.unescape(found.group(1)) if found else None
    return None


async def log(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    page = await client.get("/portal/messages", params=params)
    assert page.status_code == 200, page.text[:400]
    return page


async def as_role(client: httpx.AsyncClient, rt: Runtime, tenant: Tenant,
                  role: str = "developer") -> None:
    await signed_in(client, rt, await person(rt, tenant.id, role))


# --------------------------------------------------------------------------- the list


async def test_the_list_is_newest_first_a_page_at_a_time(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    sent = [await send(client, acme) for _ in range(PAGE_SIZE + 3)]
    await send(client, globex)
    await as_role(client, rt, acme)
    first = await log(client)
    assert ids(first) == list(reversed(sent))[:PAGE_SIZE]
    link = older_link(first)
    assert link is not None
    second = await client.get(link)
    assert second.status_code == 200
    assert ids(second) == list(reversed(sent))[PAGE_SIZE:]
    assert older_link(second) is None


async def test_the_older_link_keeps_the_filters(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    to_number = [await send(client, acme) for _ in range(PAGE_SIZE + 1)]
    await send(client, acme, to=OTHER_NUMBER)
    await as_role(client, rt, acme)
    first = await log(client, to=NUMBER)
    link = older_link(first)
    assert link is not None
    assert "to=%2B12025550188" in link
    assert ids(await client.get(link)) == [to_number[0]]


async def test_the_status_and_error_code_filters_narrow(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    delivered = [await send(client, acme), await send(client, acme)]
    failed = await send(client, acme, to=FAILS)
    await settled(rt, clock)
    queued = await send(client, acme)
    await as_role(client, rt, acme)
    assert ids(await log(client, status="delivered")) == list(reversed(delivered))
    assert ids(await log(client, status="failed")) == [failed]
    assert ids(await log(client, status="queued")) == [queued]
    assert ids(await log(client, status="expired")) == []
    assert ids(await log(client, error_code="sandbox_failed")) == [failed]
    assert ids(await log(client, error_code="sandbox_expired")) == []
    assert [r.status for r in rows(await log(client, status="delivered"))] == ["delivered"] * 2


async def test_the_channel_filter_narrows(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    sent = [await send(client, acme), await send(client, acme)]
    await as_role(client, rt, acme)
    assert ids(await log(client, channel="sms")) == list(reversed(sent))
    assert ids(await log(client, channel="whatsapp")) == []
    assert ids(await log(client, channel="email")) == []


async def test_the_recipient_filter_matches_the_exact_number(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    to_number = [await send(client, acme), await send(client, acme)]
    other = await send(client, acme, to=OTHER_NUMBER)
    await send(client, globex)  # the same number in another tenant
    await as_role(client, rt, acme)
    assert ids(await log(client, to=NUMBER)) == list(reversed(to_number))
    assert ids(await log(client, to="+1 (202) 555-0188")) == list(reversed(to_number))
    assert ids(await log(client, to=OTHER_NUMBER)) == [other]
    assert ids(await log(client, to="+12025550175")) == []
    assert [r.to for r in rows(await log(client, to=NUMBER))] == [NUMBER] * 2


async def test_the_date_filters_narrow_by_day(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    day_one = await send(client, acme)  # the fake clock's 2026-01-01
    clock.advance(2 * DAY)
    day_three = await send(client, acme)
    clock.advance(2 * DAY)
    day_five = await send(client, acme)
    await as_role(client, rt, acme)
    assert ids(await log(client, **{"from": "2026-01-03"})) == [day_five, day_three]
    assert ids(await log(client, until="2026-01-03")) == [day_three, day_one]
    assert ids(await log(client, **{"from": "2026-01-02", "until": "2026-01-04"})) == [
        day_three]
    assert ids(await log(client, **{"from": "2026-01-06"})) == []


async def test_a_parent_lists_a_sub_accounts_messages_by_its_id(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    child = await make_tenant(rt, "Acme Europe", parent=acme.id)
    own = await send(client, acme)
    childs = await send(client, child)
    await as_role(client, rt, acme, "owner")
    assert ids(await log(client)) == [own]
    assert ids(await log(client, account=child.id)) == [childs]
    assert ids(await log(client, account=acme.id)) == [own]


async def test_a_sub_accounts_message_opens_from_its_list(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    """A parent lists a sub-account's messages, then opens one: the row's link leads to
    the message's page, as every other row's does."""
    child = await make_tenant(rt, "Acme Europe", parent=acme.id)
    childs = await send(client, child)
    await settled(rt, clock)
    await as_role(client, rt, acme, "owner")
    listed = await log(client, account=child.id)
    link = re.search(rf'<a href="([^"]*{childs}[^"]*)">', listed.text)
    assert link is not None
    page = await client.get(html.unescape(link.group(1)))
    assert page.status_code == 200, page_error(page)
    assert timeline_statuses(page) == ["queued", "sent", "delivered"]


async def test_a_moving_sub_account_message_refreshes_from_the_sub_account(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    """The timeline's refresh asks for the same message it shows, and naming an account
    that is not below the reader's shows nothing of it."""
    child = await make_tenant(rt, "Acme Europe", parent=acme.id)
    childs = await send(client, child)
    await as_role(client, rt, acme, "owner")
    page = await client.get(f"/portal/messages/{childs}", params={"account": child.id})
    refresh = re.search(r'hx-get="([^"]+)"', page.text)
    assert refresh is not None
    assert (await client.get(html.unescape(refresh.group(1)))).status_code == 200
    theirs = await send(client, globex)
    stranger = await client.get(f"/portal/messages/{theirs}", params={"account": globex.id})
    assert stranger.status_code == 404
    assert page_error(stranger) == "message_not_found"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("status", "lost", "Choose one of the listed values."),
    ("channel", "fax", "Choose one of the listed values."),
    ("to", "abc", "Enter the number in international form"),
    ("to", "2025550173", "Enter the number in international form"),
    ("from", "not-a-date", "Enter a date as YYYY-MM-DD."),
    ("until", "not-a-date", "Enter a date as YYYY-MM-DD."),
    ("until", "2026-02-30", "Enter a date as YYYY-MM-DD."),
    ("from", "2026-01-03-and-then-some", "Enter a date as YYYY-MM-DD."),
    ("error_code", "no such code!", "That is not an error code."),
    ("account", "abc", "That is not an account id."),
    ("account", "acc_" + "0" * 26, "There is no such sub-account."),
])
async def test_garbage_in_a_filter_is_a_400_with_the_message_beside_it(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, name: str, value: str,
        message: str) -> None:
    await send(client, acme)
    await as_role(client, rt, acme, "owner")
    page = await client.get("/portal/messages", params={name: value})
    assert page.status_code == 400
    shown = filter_error(page, name)
    assert shown is not None
    assert shown.startswith(message)  # the example number after it may change
    assert ids(page) == []


async def test_another_tenants_account_id_is_refused_and_shows_none_of_its_messages(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    await send(client, acme)
    theirs = await send(client, globex)
    await as_role(client, rt, acme, "owner")
    page = await client.get("/portal/messages", params={"account": globex.id})
    assert page.status_code == 400
    assert filter_error(page, "account") == "There is no such sub-account."
    assert ids(page) == []
    assert theirs not in page.text


async def test_a_sub_account_cannot_list_its_parent(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    child = await make_tenant(rt, "Acme Europe", parent=acme.id)
    parents = await send(client, acme)
    await as_role(client, rt, child, "owner")
    page = await client.get("/portal/messages", params={"account": acme.id})
    assert page.status_code == 400
    assert filter_error(page, "account") == "There is no such sub-account."
    assert parents not in page.text


@pytest.mark.parametrize("cursor", ["forged", "bXNnX25vdGFuaWQ", "%00"])
async def test_a_forged_cursor_is_a_400_and_lists_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, cursor: str) -> None:
    await send(client, acme)
    await as_role(client, rt, acme)
    page = await client.get("/portal/messages", params={"cursor": cursor})
    assert page.status_code == 400
    assert "The cursor is not one this API gave out." in page.text
    assert ids(page) == []


# --------------------------------------------------------------------------- what a role sees


@pytest.mark.parametrize("role", ["support", "compliance"])
async def test_masked_roles_see_masked_numbers_and_no_body(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, role: str) -> None:
    message_id = await send(client, acme)
    await as_role(client, rt, acme, role)
    [row] = rows(await log(client))
    assert row.to == "+1202555****"
    assert NUMBER not in (await log(client)).text
    page = await client.get(f"/portal/messages/{message_id}")
    assert page.status_code == 200
    assert "+1202555****" in page.text
    assert NUMBER not in page.text
    assert "Secret words" not in page.text
    assert "hidden for your role" in page.text


async def test_a_role_with_content_sees_the_number_and_the_body(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    message_id = await send(client, acme)
    await as_role(client, rt, acme, "developer")
    page = await client.get(f"/portal/messages/{message_id}")
    assert page.status_code == 200
    assert f"<dd>{NUMBER}</dd>" in page.text
    assert '<span class="body">Secret words</span>' in page.text


# --------------------------------------------------------------------------- a message's page


def timeline_statuses(page: httpx.Response) -> list[str]:
    timeline = re.search(r'<ol class="timeline">(.*?)</ol>', page.text, re.S)
    assert timeline, page.text[:400]
    return re.findall(r'<span class="status ([a-z_]+)">', timeline.group(1))


def deliveries(page: httpx.Response) -> dict[str, list[str]]:
    """Each webhook delivery shown: its id → the answers of its attempts."""
    found = re.findall(r'<article class="delivery" id="([^"]+)">(.*?)</article>',
                       page.text, re.S)
    return {delivery: re.findall(r"<tr><td>\d+</td><td>[^<]*</td><td>([^<]*)</td>", body)
            for delivery, body in found}


async def test_the_message_page_shows_its_timeline(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    message_id = await send(client, acme, to=FAILS)
    await settled(rt, clock)
    await as_role(client, rt, acme, "support")
    page = await client.get(f"/portal/messages/{message_id}")
    assert page.status_code == 200
    assert timeline_statuses(page) == ["queued", "sent", "failed"]
    assert '<span class="status failed" id="message-status">' in page.text
    assert "<code>sandbox_failed</code>" in page.text


async def test_webhook_deliveries_and_their_attempts_show_with_webhooks_manage(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    hooked = await make_tenant(rt, "Hooked", webhook_url=hooks.url)
    message_id = await send(client, hooked)
    await settled(rt, clock)
    assert hooks.requests, "the receiver got no webhook"
    await as_role(client, rt, hooked, "developer")
    page = await client.get(f"/portal/messages/{message_id}")
    shown = deliveries(page)
    assert len(shown) == len(hooks.requests)
    assert all(answers == ["200"] for answers in shown.values())
    assert hooks.url in page.text


async def test_webhook_deliveries_are_not_shown_without_webhooks_manage(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    hooked = await make_tenant(rt, "Hooked", webhook_url=hooks.url)
    message_id = await send(client, hooked)
    await settled(rt, clock)
    await as_role(client, rt, hooked, "support")
    page = await client.get(f"/portal/messages/{message_id}")
    assert page.status_code == 200
    assert deliveries(page) == {}
    assert hooks.url not in page.text


async def test_the_timeline_refreshes_while_the_message_moves_and_stops_when_final(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    message_id = await send(client, acme)
    await as_role(client, rt, acme)
    fragment = f"/portal/messages/{message_id}/timeline"
    moving = await client.get(fragment, headers={"HX-Request": "true"})
    assert moving.status_code == 200
    assert 'hx-trigger="every 2s"' in moving.text
    assert f'hx-get="{fragment}"' in moving.text
    assert "<html" not in moving.text  # a fragment, not a page
    page = await client.get(f"/portal/messages/{message_id}")
    assert 'hx-trigger="every 2s"' in page.text
    await settled(rt, clock)
    final = await client.get(fragment, headers={"HX-Request": "true"})
    assert final.status_code == 200
    assert "hx-trigger" not in final.text
    assert timeline_statuses(final) == ["queued", "sent", "delivered"]


async def test_another_tenants_message_is_a_404_page(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    theirs = await send(client, globex)
    await as_role(client, rt, acme)
    for path in (f"/portal/messages/{theirs}", f"/portal/messages/{theirs}/timeline"):
        page = await client.get(path)
        assert page.status_code == 404
        assert page_error(page) == "message_not_found"
        assert "Secret words" not in page.text
        assert NUMBER not in page.text


@pytest.mark.parametrize("message_id", ["msg_nope", "abc", "msg_" + "0" * 27,
                                        "MSG_" + "0" * 26, "%00"])
async def test_a_malformed_message_id_is_a_404_page(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, message_id: str) -> None:
    await as_role(client, rt, acme)
    page = await client.get(f"/portal/messages/{message_id}")
    assert page.status_code == 404
    assert page_error(page) == "message_not_found"
    assert "<h1>Not found</h1>" in page.text


async def test_an_erased_persons_messages_show_as_erased(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    erased = await send(client, acme)
    kept = await send(client, acme, to=OTHER_NUMBER)
    assert await erase_subject(rt, tenant=acme.id, address=NUMBER, actor=TEST_ACTOR)
    await as_role(client, rt, acme, "owner")
    listed = await log(client)
    assert [row.id for row in rows(listed)] == [kept]  # the erased row has no number to show
    assert f'href="/portal/messages/{erased}"' in listed.text
    assert NUMBER not in listed.text
    page = await client.get(f"/portal/messages/{erased}")
    assert page.status_code == 200
    assert "data was erased on request" in page.text
    assert "Secret words" not in page.text
