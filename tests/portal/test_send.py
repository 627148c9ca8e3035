"""Sending a message from the portal's form: one message stored and its page shown, once
however often the form is posted; every refusal (a field, the form token, the session,
the role) shown where the person looks, with nothing stored; the live count of SMS
parts, the server's own.

What was stored is read from the database (``stored_counts``), never from the page.
"""

from __future__ import annotations

import html
import re

import httpx
import pytest

from tests.conftest import Tenant, stored_counts
from tests.portal.pages import TOKEN, field_error, page_error, signed_in
from tests.users.people import person
from tidings.connectors.encoding import segment
from tidings.portal import csrf
from tidings.runtime import Runtime

NUMBER = "+12025550173"
MESSAGE_PAGE = re.compile(r"^/portal/messages/(msg_[0-9a-z]{26})$")


async def send_form(client: httpx.AsyncClient) -> dict[str, str]:
    """The fields the send page's form carries before the person types anything."""
    page = await client.get("/portal/send")
    assert page.status_code == 200, page.text[:300]
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    assert hidden.get("_csrf"), hidden
    assert hidden.get("idempotency_key"), hidden
    return hidden


def filled(form: dict[str, str], **fields: str) -> dict[str, str]:
    return {**form, "channel": "sms", "to": NUMBER, "from": "Acme", "body": "Hello", **fields}


async def developer(client: httpx.AsyncClient, rt: Runtime, tenant: Tenant) -> dict[str, str]:
    await signed_in(client, rt, await person(rt, tenant.id, "developer"))
    return await send_form(client)


def channel_error(page: httpx.Response) -> str | None:
    """The error inside the channel field (a select, whose error has no id)."""
    block = re.search(r'<div class="field invalid">\s*<label for="channel">(.*?)</div>',
                      page.text, re.S)
    found = block and re.search(r'<p class="error"[^>]*>([^<]*)</p>', block.group(1))
    return html.unescape(found.group(1)) if found else None


async def test_sending_stores_one_message_and_opens_its_page(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    form = await developer(client, rt, acme)
    before = await stored_counts(rt)
    sent = await client.post("/portal/send", data=filled(form, body="Hello from the portal"))
    assert sent.status_code == 303
    opened = MESSAGE_PAGE.match(sent.headers["location"])
    assert opened, sent.headers["location"]
    assert (await stored_counts(rt))["messages"] == before["messages"] + 1
    page = await client.get(sent.headers["location"])
    assert page.status_code == 200
    assert opened.group(1) in page.text
    assert "Hello from the portal" in page.text
    assert f"<dd>{NUMBER}</dd>" in page.text
    listed = await client.get("/v1/messages", headers=acme.headers)
    assert [m["id"] for m in listed.json()["data"]] == [opened.group(1)]


async def test_the_same_form_posted_twice_sends_once(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    form = await developer(client, rt, acme)
    before = await stored_counts(rt)
    first = await client.post("/portal/send", data=filled(form))
    again = await client.post("/portal/send", data=filled(form))
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert (await stored_counts(rt))["messages"] == before["messages"] + 1
    other_form = await send_form(client)  # a new page: a new key, a new message
    assert other_form["idempotency_key"] != form["idempotency_key"]
    assert (await client.post("/portal/send", data=filled(other_form))).status_code == 303
    assert (await stored_counts(rt))["messages"] == before["messages"] + 2


@pytest.mark.parametrize(("fields", "field"), [
    ({"to": ""}, "to"),
    ({"to": "   "}, "to"),
    ({"from": ""}, "from"),
    ({"body": ""}, "body"),
    ({"to": "+1" + "2" * 400}, "to"),
    ({"from": "A" * 321}, "from"),
    ({"body": "a" * 100_001}, "body"),
    ({"to": "12345"}, "to"),
    ({"to": "not a number"}, "to"),
    ({"to": "+1202555017"}, "to"),
])
async def test_a_bad_field_is_a_400_with_the_error_beside_it_and_nothing_stored(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, fields: dict[str, str],
        field: str) -> None:
    form = await developer(client, rt, acme)
    before = await stored_counts(rt)
    page = await client.post("/portal/send", data=filled(form, **fields))
    assert page.status_code == 400
    assert field_error(page, field), page.text[page.text.find("<main"):][:1500]
    assert await stored_counts(rt) == before
    if field != "body":  # the form comes back filled in
        assert 'Hello</textarea>' in page.text


async def test_an_unknown_channel_is_a_400_beside_the_channel(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    form = await developer(client, rt, acme)
    before = await stored_counts(rt)
    page = await client.post("/portal/send", data=filled(form, channel="fax"))
    assert page.status_code == 400
    assert channel_error(page) == "Choose one of the listed channels."
    assert await stored_counts(rt) == before


async def test_every_channel_the_form_offers_has_the_fields_it_needs(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    """The form offers email, and the send path refuses an email without a subject
    ("an email needs a subject"): the form must let the person write one."""
    await developer(client, rt, acme)
    page = await client.get("/portal/send")
    assert '<option value="email"' in page.text
    assert '<label for="subject">' in page.text
    assert 'name="subject"' in page.text


@pytest.mark.parametrize("token", [None, "", "forged", "x" * 43])
async def test_without_the_form_token_nothing_is_sent(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, token: str | None) -> None:
    form = await developer(client, rt, acme)
    before = await stored_counts(rt)
    data = filled(form)
    del data["_csrf"]
    if token is not None:
        data["_csrf"] = token
    refused = await client.post("/portal/send", data=data)
    assert refused.status_code == 403
    assert page_error(refused) == "csrf_failed"
    assert await stored_counts(rt) == before


async def test_without_a_session_the_form_leads_to_the_login(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    before = await stored_counts(rt)
    opened = await client.get("/portal/send")
    assert opened.status_code == 303
    assert opened.headers["location"] == "/portal/login?next=/portal/send"
    client.cookies.set(csrf.COOKIE, TOKEN)  # a browser that drew the form, then lost its session
    posted = await client.post("/portal/send", headers={"Referer": "http://tidings.test/portal/send"},
                               data={"_csrf": TOKEN, "channel": "sms", "to": NUMBER,
                                     "from": "Acme", "body": "Hello"})
    assert posted.status_code == 303
    assert posted.headers["location"] == "/portal/login?next=/portal/send"
    assert await stored_counts(rt) == before


async def preview(client: httpx.AsyncClient, body: str) -> tuple[str, int]:
    """The encoding and the number of parts the live preview shows for ``body``."""
    answer = await client.post("/portal/send/preview", data={"_csrf": TOKEN, "body": body,
                                                             "channel": "sms"},
                               headers={"HX-Request": "true"})
    assert answer.status_code == 200, answer.text[:300]
    encoding = re.search(r"<span data-encoding>([^<]*)</span>", answer.text)
    parts = re.search(r"<span data-segments>([^<]*)</span>", answer.text)
    assert encoding, answer.text
    assert parts, answer.text
    return encoding.group(1), int(parts.group(1))


@pytest.mark.parametrize("body", ["Hello", "Your code is 123456. " * 10, "Hi 👋",
                                  "Ready? 🚀 " * 12])
async def test_the_preview_counts_as_the_server_encodes(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, body: str) -> None:
    await developer(client, rt, acme)
    expected = segment(body)
    assert await preview(client, body) == (expected.encoding, expected.num_segments)


async def test_the_preview_tells_plain_text_from_text_with_an_emoji(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    await developer(client, rt, acme)
    assert await preview(client, "Hello there") == ("GSM-7", 1)
    encoding, parts = await preview(client, "Ready? 🚀 " * 12)  # 120 UTF-16 units
    assert (encoding, parts) == ("UCS-2", 2)


async def test_a_role_without_messages_send_gets_the_403_page(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    await signed_in(client, rt, await person(rt, acme.id, "support"))
    before = await stored_counts(rt)
    page = await client.get("/portal/send")
    assert page.status_code == 403
    assert page_error(page) == "permission_denied"
    posted = await client.post("/portal/send", data={
        "_csrf": TOKEN, "channel": "sms", "to": NUMBER, "from": "Acme", "body": "Hello"})
    assert posted.status_code == 403
    assert page_error(posted) == "permission_denied"
    assert await stored_counts(rt) == before
