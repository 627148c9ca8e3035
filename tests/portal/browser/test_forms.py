"""What the browser shows when a form goes wrong, and that nothing is sent then: empty
fields, a stale form token, a session that ended while the form was open, a double
click; and the keyboard's way in."""

from __future__ import annotations

import re
import secrets

import pytest
from playwright.async_api import Page, expect

from tests.portal.browser.conftest import (
    SENDER,
    Person,
    Portal,
    error_beside,
    log_in,
)

pytestmark = pytest.mark.slow

MESSAGE_PAGE = re.compile(r".*/portal/messages/msg_[0-9a-z]{26}$")
SEND_FIELDS = ("To", "From", "Message")


async def fill_send_form(page: Page, to: str, body: str = "Hello from the portal") -> None:
    await page.goto("/portal/send")
    await page.get_by_label("To").fill(to)
    await page.get_by_label("From").fill(SENDER)
    await page.get_by_label("Message").fill(body)
    # The live count answered: the page is settled before anything else happens.
    await expect(page.locator("#segments")).to_contain_text(f"{len(body)} characters ·")


async def test_an_empty_send_form_shows_an_error_beside_each_field_and_sends_nothing(
        owner_page: Page, owner: Person, portal: Portal) -> None:
    before = await portal.message_count(owner)
    page = owner_page
    await page.goto("/portal/send")
    await page.get_by_role("button", name="Send").click()

    for label in SEND_FIELDS:
        await expect(error_beside(page, label)).to_be_visible()
        await expect(error_beside(page, label)).not_to_be_empty()
        await expect(page.get_by_label(label, exact=True)).to_have_accessible_description(
            re.compile(r"\S"))
    assert page.url.endswith("/portal/send")
    assert await portal.message_count(owner) == before


async def test_fields_in_error_are_marked_invalid_and_stay_required(
        owner_page: Page) -> None:
    """A screen reader says "invalid entry" for a field the form refused, and the
    browser still knows the field is required."""
    page = owner_page
    await page.goto("/portal/send")
    await page.get_by_role("button", name="Send").click()
    await expect(error_beside(page, "To")).to_be_visible()

    for label in ("To", "From"):
        field = page.get_by_label(label, exact=True)
        await expect(field).to_have_attribute("aria-invalid", "true")
        await expect(field).to_have_attribute("required", "")


async def test_a_form_whose_token_cookie_was_replaced_is_refused_and_sends_nothing(
        owner_page: Page, owner: Person, portal: Portal) -> None:
    page = owner_page
    to = "+12025550180"
    await fill_send_form(page, to)
    # Another tab logged in again meanwhile, or the cookie was tampered with: the form's
    # token is no longer the browser's.
    await page.context.add_cookies([{"name": "tidings_csrf", "value": secrets.token_urlsafe(32),
                                     "url": portal.url}])
    await page.get_by_role("button", name="Send").click()

    await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    await expect(page.get_by_role("alert")).to_contain_text("This form has expired")
    assert await portal.messages_to(owner, to) == []


async def test_a_session_that_ends_mid_form_leads_to_the_login_and_back_to_the_form(
        owner_page: Page, owner: Person, portal: Portal) -> None:
    page = owner_page
    to = "+12025550181"
    await fill_send_form(page, to)
    await page.context.clear_cookies(name="tidings_session")
    await page.get_by_role("button", name="Send").click()

    await page.wait_for_url("**/portal/login?next=/portal/send")
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await log_in(page, owner)
    await page.wait_for_url(re.compile(r".*/portal/send$"))
    await expect(page.get_by_role("heading", name="Send a message")).to_be_visible()
    assert await portal.messages_to(owner, to) == []


async def test_a_double_click_on_send_sends_one_message(
        owner_page: Page, owner: Person, portal: Portal) -> None:
    page = owner_page
    to = "+12025550182"
    await fill_send_form(page, to)
    await page.get_by_role("button", name="Send").dblclick()

    await page.wait_for_url(MESSAGE_PAGE)
    # Settled: a second request, had it made a second message, has made it by now.
    await expect(page.locator("#message-status")).to_have_text("delivered", timeout=20_000)
    [sent] = await portal.messages_to(owner, to)
    assert page.url.endswith(sent["id"])


async def test_tab_from_the_top_reaches_the_skip_link_first_with_a_visible_outline(
        owner_page: Page) -> None:
    page = owner_page
    await page.goto("/portal/send")
    await page.keyboard.press("Tab")

    skip = page.get_by_role("link", name="Skip to the content")
    await expect(skip).to_be_focused()
    await expect(skip).to_be_in_viewport()
    style, width = await skip.evaluate(
        "el => { const s = getComputedStyle(el);"
        " return [s.outlineStyle, parseFloat(s.outlineWidth)]; }")
    assert style != "none"
    assert width >= 2

    await page.keyboard.press("Enter")
    await expect(page.locator("#main")).to_be_focused()
