"""The sub-processor register in a real browser: a member of the operator's staff logs
in to the console, records a sub-processor from the form (its countries as text, the
personal data as boxes to tick, the transfer safeguard) and notifies the clients with
the date the form proposes, thirty days on; the notice to a client shows with the id of
the mail its owner was sent, checked against the server's local mailbox. The client's
owner then opens the Sub-processors page from the menu, finds the new one coming, objects
with a reason, and sees the objection recorded; the staff's page shows it, open, with
the form to resolve it.

The server keeps its own clock: the dates are checked relative to now."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, expect

from tests.functional.server import run_cli
from tests.portal.browser.conftest import (
    Person,
    Portal,
    Screenshot,
    error_beside,
    first_log_in,
    log_in,
    new_context,
    sign_in,
)

pytestmark = pytest.mark.slow

PHONE = "user.contact.phone_number"
CONTENT = "user.content.private"
FIELD_TIME = "%Y-%m-%dT%H:%M"  # what a datetime-local field holds
SHOWN_TIME = "%Y-%m-%d %H:%M"  # what the pages show
REASON = "Our customers' contracts forbid processing in Ireland."


def new_staff(portal: Portal) -> Person:
    """A member of the operator's staff, as the CLI makes one: a temporary password."""
    email = "ops-subprocessors@example.com"
    made = portal.cli_json("users", "create", "--operator", "--email", email,
                           "--role", "operator")
    return Person(email=email, password=made["temporary_password"], account_id="",
                  api_key="")


async def legal_mail_to(portal: Portal, email: str, timeout: float = 20.0) -> dict[str, Any]:
    """The notice in the server's local mailbox to ``email``, once its mail sender has
    put it there."""
    deadline = time.monotonic() + timeout
    while True:
        done = await asyncio.to_thread(run_cli, portal.server.env, "mail", "list", "--to",
                                       email, "--json")
        assert done.returncode == 0, done.stderr
        notices = [m for m in json.loads(done.stdout) if m["kind"] == "legal"]
        if notices:
            assert len(notices) == 1, notices
            found: dict[str, Any] = notices[0]
            return found
        assert time.monotonic() < deadline, f"no legal notice mailed to {email}"
        await asyncio.sleep(0.3)


async def reload_until_shown(page: Page, target: Locator, timeout: float = 20.0) -> None:
    """Reload ``page`` until ``target`` is on it: the server's workers write the notices
    a moment after the button was pressed, and the page does not refresh itself."""
    deadline = time.monotonic() + timeout
    while not await target.count():
        assert time.monotonic() < deadline, "the notice never showed"
        await asyncio.sleep(0.3)
        await page.reload()


async def test_staff_record_and_notify_a_sub_processor_and_a_client_objects(
        page: Page, browser: Browser, portal: Portal, screenshot: Screenshot) -> None:
    client = first_log_in(portal, portal.new_person("owner"))
    staff = first_log_in(portal, new_staff(portal))
    await page.goto("/operator")
    await page.wait_for_url(re.compile(r".*/portal/login\?next=.*"))
    await log_in(page, staff)
    await page.wait_for_url(re.compile(r".*/operator$"))
    await page.get_by_role("banner").get_by_role("navigation").get_by_role(
        "link", name="Sub-processors").click()
    await page.wait_for_url(re.compile(r".*/operator/subprocessors$"))
    await expect(page.get_by_role("heading", name="Sub-processors", level=1)).to_be_visible()
    await expect(page.get_by_text("No sub-processors recorded.")).to_be_visible()

    # Sent empty: refused beside the fields, nothing recorded.
    await page.get_by_role("button", name="Record").click()
    await expect(error_beside(page, "Legal name")).to_have_text(
        "Legal name: this field is required.")
    await expect(page.locator("#data_categories .error")).to_have_text(
        "Personal data: choose at least one category.")

    await page.get_by_label("Legal name", exact=True).fill("Northwind Carrier Ltd")
    await page.get_by_label("Countries where it processes the data").fill("GB, IE")
    await page.get_by_label("Purpose: what it does for the platform").fill(
        "Carries SMS to mobile networks in the United Kingdom and Ireland.")
    categories = page.get_by_role("group", name="Personal data it processes")
    await categories.get_by_label(PHONE, exact=True).check()
    await categories.get_by_label(CONTENT, exact=True).check()
    await page.get_by_label("Transfer safeguard").select_option("adequacy")
    await page.get_by_label("Security measures, in short").fill(
        "ISO 27001 certified; TLS on every link; access logged.")
    await page.get_by_role("button", name="Record").click()

    # Recorded, proposed: its page, with the notice's date proposed thirty days on.
    await page.wait_for_url(re.compile(r".*/operator/subprocessors/sub_\w+$"))
    sub_id = page.url.rsplit("/", 1)[-1]
    await expect(page.get_by_role("heading", name="Northwind Carrier Ltd", level=1)
                 ).to_be_visible()
    await expect(page.locator("#status")).to_have_text("proposed: no client told")
    await expect(page.locator("#entry")).to_contain_text("GB, IE")
    proposed = await page.get_by_label("Takes effect (UTC)").input_value()
    effective = datetime.strptime(proposed, FIELD_TIME).replace(tzinfo=UTC)
    assert timedelta(days=30) < effective - datetime.now(UTC) < timedelta(days=30, hours=2)

    await page.get_by_role("button", name="Notify the clients").click()
    await page.wait_for_url(f"**/operator/subprocessors/{sub_id}#notices")
    await expect(page.locator("#status")).to_have_text("notified: the thirty days run")
    await expect(page.locator("#effective")).to_have_text(
        f"{effective.strftime(SHOWN_TIME)} UTC")
    await expect(page.get_by_role("button", name="Notify the clients")).to_have_count(0)
    notice = page.locator(f"#notice-{client.account_id}")
    await reload_until_shown(page, notice)
    proof = notice.locator(f'[data-proof="{client.account_id}"] code')
    await expect(proof).to_have_text(re.compile(r"^mail_\w+$"))
    await screenshot(page, "operator-subprocessor")
    mailed = await legal_mail_to(portal, client.email)
    assert mailed["id"] == (await proof.inner_text()).strip(), mailed
    assert "Northwind Carrier Ltd" in mailed["subject"], mailed["subject"]

    # The client's owner, in a browser of their own: the menu, the entry coming.
    context = await new_context(browser, portal)
    try:
        await sign_in(context, portal, client)
        owner = await context.new_page()
        await owner.goto("/portal")
        await owner.get_by_role("navigation", name="Main").get_by_role(
            "link", name="Sub-processors").click()
        await owner.wait_for_url(re.compile(r".*/portal/privacy/subprocessors$"))
        entry = owner.locator(f"#upcoming #sub-{sub_id}")
        await expect(entry).to_contain_text("Northwind Carrier Ltd")
        await expect(entry.locator('[data-fact="applies_from"]')).to_have_text(
            f"{effective.strftime(SHOWN_TIME)} UTC")
        await entry.get_by_role("button", name="Object").click()
        await expect(error_beside(owner, "Your reason for objecting")).to_have_text(
            "Your reason: this field is required.")
        entry = owner.locator(f"#sub-{sub_id}")
        await entry.get_by_label("Your reason for objecting").fill(REASON)
        await entry.get_by_role("button", name="Object").click()
        await owner.wait_for_url(re.compile(rf".*\?objected={sub_id}#sub-{sub_id}$"))
        await expect(entry.get_by_role("status")).to_have_text("Your objection is recorded.")
        await expect(entry.locator(f"#objection-{sub_id}")).to_contain_text(REASON)
        await expect(entry.locator(f'[data-state="{sub_id}"]')).to_contain_text(
            "open: until the operator resolves it")
        await expect(entry.get_by_role("button", name="Object")).to_have_count(0)
        await screenshot(owner, "subprocessors")
    finally:
        await context.close()

    async with httpx.AsyncClient(base_url=portal.url, timeout=10.0, headers={
            "Authorization": f"Bearer {client.api_key}"}) as api:
        [mine] = (await api.get("/v1/subprocessors")).json()
    assert (mine["id"], mine["notice"]["objection_reason"]) == (sub_id, REASON)

    # The staff's page: the objection, open, with the form to resolve it.
    await page.reload()
    await expect(notice.locator(f'[data-objection="{client.account_id}"]')).to_contain_text(
        REASON)
    await expect(notice.get_by_role("button", name="Resolve the objection")).to_be_visible()
    await expect(page.locator("#objections")).to_have_text("1 open of 1")
