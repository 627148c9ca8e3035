"""Looking after an account from the portal, in a real browser: where webhooks go and
**Resend**, API keys made and revoked, a number claimed with the code the platform
sends, the team (an invited user's first log-in, a role changed, a user disabled), and
the audit trail with its chain verified. What a page says is checked against what the
API, a webhook receiver, or a new browser profile then meets."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from itertools import count
from typing import Any

import httpx
import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, expect

from tests.conftest import codes_sent
from tests.functional.server import post_endpoint
from tests.portal.browser.conftest import (
    NEW_PASSWORD,
    Person,
    Portal,
    Screenshot,
    error_beside,
    log_in,
    new_context,
)
from tidings.core.settings import Settings
from tidings.runtime import Runtime, close_runtime, open_runtime

pytestmark = pytest.mark.slow

MESSAGE_PAGE = re.compile(r".*/portal/messages/msg_[0-9a-z]{26}#\S+$")
_invites = count(1)


class Receiver:
    """A client's webhook endpoint on loopback: what it was sent, in order."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []  # (Tidings-Event-Id, body)

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append((request.headers.get("Tidings-Event-Id", ""), await request.json()))
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    found = Receiver()
    async with post_endpoint(found.handle) as url:
        yield found, url


async def deliveries_finished(portal: Portal, person: Person, message_id: str, count: int,
                              timeout: float = 20.0) -> None:
    """Until the message has ``count`` webhook deliveries and none is pending: what the
    pages show once the server has recorded the receiver's answers."""
    deadline = time.monotonic() + timeout
    async with api(portal, person.api_key) as client:
        while True:
            found = await client.get("/v1/webhook-deliveries",
                                     params={"message_id": message_id})
            assert found.status_code == 200, found.text
            statuses = [d["status"] for d in found.json()["data"]]
            if len(statuses) >= count and "pending" not in statuses:
                assert len(statuses) == count, statuses
                return
            assert time.monotonic() < deadline, statuses
            await asyncio.sleep(0.1)


def api(portal: Portal, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=portal.url, timeout=10.0,
                             headers={"Authorization": f"Bearer {key}"})


async def invite(page: Page, email: str, role: str) -> str:
    """Invite ``email`` from the Team page: the temporary password the page shows once."""
    await page.goto("/portal/team")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Role", exact=True).select_option(role)
    await page.get_by_role("button", name="Invite").click()
    await expect(page.get_by_role("heading", name=f"Invited {email}")).to_be_visible()
    password = (await page.locator("#temporary-password").inner_text()).strip()
    assert len(password) >= 12, password
    return password


async def test_webhooks_post_the_chosen_statuses_and_resend_repeats_the_same_event(
        owner_page: Page, owner: Person, portal: Portal, screenshot: Screenshot,
        receiver: tuple[Receiver, str]) -> None:
    got, url = receiver
    page = owner_page
    await page.goto("/portal/webhooks")
    await page.get_by_label("Webhook URL").fill(url)
    every_change = page.get_by_label("Every change")
    await every_change.uncheck()
    await page.get_by_role("button", name="Save").click()
    # Nothing ticked: refused, said beside the statuses.
    await expect(page.locator("fieldset .error")).to_have_text(
        "Tick at least one status, or every change.")

    await page.get_by_label("delivered", exact=True).check()
    await page.get_by_label("Every change").uncheck()
    await page.get_by_role("button", name="Save").click()
    await page.wait_for_url("**/portal/webhooks?saved=1")
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await page.reload()
    await expect(page.get_by_label("Webhook URL")).to_have_value(url)
    await expect(page.get_by_label("delivered", exact=True)).to_be_checked()
    await expect(page.get_by_label("undelivered", exact=True)).not_to_be_checked()
    await expect(page.get_by_label("Every change")).not_to_be_checked()

    message_id = await portal.send_by_api(owner, "+12025550177", "Your table is ready")
    await portal.wait_until_final(owner, [message_id])
    await deliveries_finished(portal, owner, message_id, 1)
    [(event_id, body)] = got.posts
    assert event_id
    assert body["id"] == event_id
    assert body["data"]["message_id"] == message_id, body
    assert body["data"]["status"] == "delivered", body

    await page.goto("/portal/webhooks")
    row = page.locator("table.data tbody tr").filter(
        has=page.get_by_role("link", name=message_id))
    await expect(row).to_have_count(1)
    await expect(row.locator(".status")).to_have_text("succeeded")
    await screenshot(page, "webhooks")
    await row.get_by_role("button", name="Resend").click()

    await page.wait_for_url(MESSAGE_PAGE)
    assert message_id in page.url
    await deliveries_finished(portal, owner, message_id, 2)
    assert len(got.posts) == 2
    assert got.posts[1][0] == event_id, "a resend is the same event"
    assert got.posts[1][1]["data"]["message_id"] == message_id
    resent_id = page.url.rsplit("#", 1)[1]
    await expect(page.locator(f"article.delivery#{resent_id}")).to_be_visible()
    await page.reload()
    deliveries = page.locator("article.delivery")
    await expect(deliveries).to_have_count(2)
    await expect(deliveries.locator(".status.succeeded")).to_have_count(2)

    # The message's own page resends too.
    await deliveries.first.get_by_role("button", name="Resend").click()
    await page.wait_for_url(MESSAGE_PAGE)
    await deliveries_finished(portal, owner, message_id, 3)
    assert [posted[0] for posted in got.posts] == [event_id] * 3
    await page.reload()
    await expect(page.locator("article.delivery")).to_have_count(3)


async def test_a_new_key_is_shown_once_works_with_its_scopes_and_stops_when_revoked(
        browser: Browser, owner: Person, portal: Portal, screenshot: Screenshot) -> None:
    context = await new_context(browser, portal)
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    await context.add_cookies([{"name": "tidings_session", "value": owner.session_cookie or "",
                                "url": portal.url}])
    page = await context.new_page()
    try:
        await page.goto("/portal/keys")
        await page.get_by_role("button", name="Create key").click()
        await expect(error_beside(page, "Name")).to_have_text("Name: this field is required.")
        await expect(page.locator("#new-key")).to_have_count(0)

        await page.get_by_label("Name").fill("Reporting")
        await page.get_by_label("messages:read", exact=True).check()
        await page.get_by_role("button", name="Create key").click()

        shown = page.locator("#new-key")
        await expect(shown).to_be_visible()
        key = (await shown.inner_text()).strip()
        assert key.startswith("tdk_"), key
        copy = page.locator('button[data-copy="new-key"]')
        await expect(copy).to_have_text("Copy")
        await copy.click()
        await expect(copy).to_have_text("Copied")
        assert await page.evaluate("navigator.clipboard.readText()") == key
        row = page.locator("table.data tbody tr").filter(has_text="Reporting")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("messages:read")
        await expect(row).to_contain_text("active")
        await screenshot(page, "keys")

        async with api(portal, key) as client:
            assert (await client.get("/v1/messages")).status_code == 200
            refused = await client.post("/v1/messages", json={
                "to": "+12025550178", "from": "Acme", "body": "Hi", "channel": "sms"})
            assert refused.status_code == 403, refused.text

        # Shown once: the page again no longer holds it.
        await page.goto("/portal/keys")
        await expect(page.locator("#new-key")).to_have_count(0)
        assert key not in await page.content()

        await row.get_by_role("button", name="Revoke").click()
        await page.wait_for_url(re.compile(r".*/portal/keys$"))
        await expect(row).to_contain_text("revoked")
        await expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
        async with api(portal, key) as client:
            assert (await client.get("/v1/messages")).status_code == 401
    finally:
        await context.close()


@pytest.fixture
async def server_runtime(portal: Portal) -> AsyncIterator[Runtime]:
    """The server's database and keys opened here, no workers: to read the code the
    platform sent to a number, as the phone would (``tests.conftest.codes_sent``)."""
    env = portal.server.env
    umask = os.umask(0o022)  # opening a runtime makes this process's umask private:
    os.umask(umask)          # put back after, for the screenshots written later
    try:
        runtime = await open_runtime(Settings(
            data_dir=env["TIDINGS_DATA_DIR"], smpp_port=0, webhook_allow_private=True),
            start_background=False)
    finally:
        os.umask(umask)
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


async def code_sent_to(runtime: Runtime, number: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while not (codes := await codes_sent(runtime, number)):
        assert time.monotonic() < deadline, f"no code sent to {number}"
        await asyncio.sleep(0.2)
    return codes[-1]


async def test_a_number_is_claimed_with_the_code_sent_to_it(
        owner_page: Page, server_runtime: Runtime) -> None:
    page = owner_page
    number = "+12025550191"
    await page.goto("/portal/numbers")
    await page.get_by_role("button", name="Send a code").click()
    await expect(error_beside(page, "Number or address")).to_have_text(
        "Number or address: this field is required.")

    await page.get_by_label("Number or address").fill(number)
    await page.get_by_role("button", name="Send a code").click()
    await expect(page.get_by_role("heading", name="Prove it is yours")).to_be_visible()
    await expect(page.locator("main strong")).to_have_text(number)
    code = await code_sent_to(server_runtime, number)

    wrong = "000000" if code != "000000" else "111111"
    await page.get_by_label("Code").fill(wrong)
    await page.get_by_role("button", name="Verify").click()
    await expect(error_beside(page, "Code")).to_be_visible()
    await expect(error_beside(page, "Code")).not_to_be_empty()
    await expect(page.get_by_role("heading", name="Prove it is yours")).to_be_visible()

    await page.get_by_label("Code").fill(code)
    await page.get_by_role("button", name="Verify").click()
    await page.wait_for_url(re.compile(r".*/portal/numbers$"))
    yours = page.locator("table.data tbody tr").filter(has_text=number)
    await expect(yours).to_have_count(1)
    await expect(page.get_by_role("heading", name="Claim a number or address")).to_be_visible()


async def test_an_invited_user_logs_in_changes_the_password_and_can_be_disabled(
        browser: Browser, owner_page: Page, portal: Portal, screenshot: Screenshot) -> None:
    page = owner_page
    email = f"dev{next(_invites)}@example.com"
    await page.goto("/portal/team")
    await page.get_by_role("button", name="Invite").click()
    await expect(error_beside(page, "Email")).to_have_text("Email: this field is required.")
    await expect(page.locator("#temporary-password")).to_have_count(0)

    password = await invite(page, email, "developer")
    row = page.locator("table.data tbody tr").filter(has_text=email)
    await expect(row.locator("td").nth(1)).to_have_text("developer")
    await expect(row.locator("td").nth(2)).to_have_text("active")

    dev = Person(email=email, password=password, account_id="", api_key="")
    context = await new_context(browser, portal)
    try:
        theirs = await context.new_page()
        await theirs.goto("/portal/login")
        await log_in(theirs, dev)
        await theirs.wait_for_url("**/portal/password")
        await theirs.get_by_label("Current password").fill(password)
        await theirs.get_by_label("New password").fill(NEW_PASSWORD)
        await theirs.get_by_role("button", name="Change password").click()
        dev.password = NEW_PASSWORD
        # A developer needs no second factor: on to the first page the role may open.
        await theirs.wait_for_url(re.compile(r".*/portal/(dashboard|messages)$"))
        await expect(theirs.get_by_role("heading", name="Not allowed")).to_have_count(0)
        await expect(theirs.get_by_role("navigation", name="Main")).to_be_visible()
        await expect(theirs.get_by_role("link", name="Team")).to_have_count(0)

        await page.goto("/portal/team")
        await page.get_by_label(f"Role of {email}").select_option("analyst")
        await row.get_by_role("button", name="Change role").click()
        await page.wait_for_url(re.compile(r".*/portal/team$"))
        await expect(row.locator("td").nth(1)).to_have_text("analyst")
        await screenshot(page, "team")

        await row.get_by_role("button", name="Disable").click()
        await page.wait_for_url(re.compile(r".*/portal/team$"))
        await expect(row.locator("td").nth(2)).to_have_text("disabled")
        await expect(row.get_by_role("button", name="Enable")).to_be_visible()

        # The disabled user's open session ends, and a new log-in is refused.
        await theirs.goto("/portal/messages")
        await theirs.wait_for_url("**/portal/login?next=/portal/messages")
        await log_in(theirs, dev)
        await expect(error_beside(theirs, "Password")).to_have_text(
            "The e-mail address or the password is wrong.")
    finally:
        await context.close()


async def test_the_audit_trail_lists_the_invite_filters_by_action_and_verifies_the_chain(
        owner_page: Page, screenshot: Screenshot) -> None:
    page = owner_page
    await invite(page, f"auditor{next(_invites)}@example.com", "compliance")

    await page.goto("/portal/audit")
    rows = page.locator("table.data tbody tr")
    await expect(rows.first).to_be_visible()
    await page.get_by_label("Action").fill("user.create")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url(re.compile(r".*[?&]action=user\.create"))
    await expect(page.get_by_label("Action")).to_have_value("user.create")
    await expect(rows.first).to_be_visible()
    for row in await rows.all():
        await expect(row.locator("td").nth(2)).to_have_text("user.create")
        await expect(row.locator("td").nth(3)).to_contain_text("users")

    await page.get_by_role("button", name="Verify the chain").click()
    await expect(page.locator("#chain-check")).to_contain_text("The chain is intact")
    await screenshot(page, "audit")

    await page.goto("/portal/audit")
    await page.get_by_label("Action").fill("User Create!")
    await page.get_by_role("button", name="Filter").click()
    await expect(error_beside(page, "Action")).to_have_text(
        "That is not a value this filter takes.")
    await expect(page.get_by_label("Action")).to_have_attribute("aria-invalid", "true")
