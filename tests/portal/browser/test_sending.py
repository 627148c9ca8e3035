"""Sending an SMS from the portal and following it, in a real browser: the parts counted
as the message is typed, the message's page following the carrier's receipt by itself,
the message log's filters, at a desk's width and at a phone's."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import pytest
from playwright.async_api import Page, expect

from tests.portal.browser.conftest import SENDER, Person, Portal, Screenshot, error_beside

pytestmark = pytest.mark.slow

GSM7_TEXT = "Hello there!"  # 12 characters of the GSM alphabet: one part
# 73 characters with an emoji: UCS-2, whose single part holds 70, so two parts.
EMOJI_TEXT = "See you at the party tonight 🎉 bring snacks and good music for everyone!!"
# The sandbox carrier refuses this number once (retried after 1 s), then delivers: the
# message is still on its way when its page first shows.
DELIVERED_AFTER_A_RETRY = "+12025550104"
MESSAGE_PAGE = re.compile(r".*/portal/messages/msg_[0-9a-z]{26}$")


async def test_typing_counts_the_parts_and_the_sent_message_reaches_delivered_by_itself(
        owner_page: Page, owner: Person, portal: Portal, screenshot: Screenshot) -> None:
    page = owner_page
    await page.goto("/portal/send")
    segments = page.locator("#segments")
    await expect(segments).to_have_text("0 characters")

    await page.get_by_label("To").fill(DELIVERED_AFTER_A_RETRY)
    await page.get_by_label("From").fill(SENDER)
    await page.get_by_label("Message").fill(GSM7_TEXT)
    await expect(segments).to_have_text("12 characters · GSM-7 · 1 SMS part")
    await page.get_by_label("Message").fill(EMOJI_TEXT)
    await expect(segments).to_have_text("73 characters · UCS-2 · 2 SMS parts")
    await screenshot(page, "send")

    await page.get_by_role("button", name="Send").click()
    await page.wait_for_url(MESSAGE_PAGE)
    await expect(page.locator(".body")).to_have_text(EMOJI_TEXT)
    status = page.locator("#message-status")
    assert await status.inner_text() != "delivered", "nothing left to watch"
    # Whatever a reload would lose: still here at the end means the page was not reloaded.
    await page.evaluate("window.sameDocument = true")

    await expect(status).to_have_text("delivered", timeout=20_000)
    assert await page.evaluate("window.sameDocument === true"), "the page was reloaded"
    await expect(page.locator(".timeline .status.delivered")).to_have_count(1)
    await screenshot(page, "message")

    [sent] = await portal.messages_to(owner, DELIVERED_AFTER_A_RETRY)
    assert page.url.endswith(sent["id"])
    assert (sent["status"], sent["num_segments"]) == ("delivered", 2)


async def test_the_message_log_filters_by_status_and_by_recipient(
        owner_page: Page, owner: Person, portal: Portal, screenshot: Screenshot,
        phone_page: Callable[[], Awaitable[Page]]) -> None:
    delivered_to, failed_to = "+12025550175", "+12025550101"
    sent = [await portal.send_by_api(owner, to, body) for to, body in (
        (delivered_to, "Your code is 4410"), (delivered_to, "Your parcel is on its way"),
        (failed_to, "Reminder: dentist at 10:30"), ("+12025550176", "Thanks for your order"))]
    await portal.wait_until_final(owner, sent)
    page = owner_page
    await page.goto("/portal/messages")
    rows = page.locator("table.messages tbody tr")

    await page.get_by_label("Status").select_option("failed")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url(re.compile(r".*[?&]status=failed"))
    await expect(page.get_by_label("Status")).to_have_value("failed")
    await expect(rows.first).to_be_visible()
    for row in await rows.all():
        await expect(row.locator(".status")).to_have_text("failed")
    await expect(rows.filter(has_text=failed_to)).to_have_count(1)

    await page.get_by_role("link", name="Clear").click()
    await page.get_by_label("Recipient number").fill(delivered_to)
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url(re.compile(r".*[?&]to="))
    await expect(rows).to_have_count(2)
    await expect(rows.filter(has_text=delivered_to)).to_have_count(2)
    await expect(rows.locator(".status")).to_have_text(["delivered", "delivered"])
    await screenshot(page, "messages")

    phone = await phone_page()
    await phone.goto("/portal/messages")
    await expect(phone.locator("table.messages tbody tr").first).to_be_visible()
    await expect(phone.get_by_role("button", name="Filter")).to_be_in_viewport()
    # The page fits a phone's width; a wide table scrolls inside itself, not the page.
    assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
    await screenshot(phone, "messages-phone")


async def test_the_recipient_filter_takes_the_number_its_hint_gives_as_an_example(
        owner_page: Page) -> None:
    page = owner_page
    await page.goto("/portal/messages")
    recipient = page.get_by_label("Recipient number")
    example = await recipient.get_attribute("placeholder")
    assert example
    assert example.startswith("+")

    await recipient.fill(example)
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url(re.compile(r".*[?&]to="))
    await expect(error_beside(page, "Recipient number")).to_have_count(0)
    await expect(page.get_by_text("No messages match.")).to_be_visible()
