"""The privacy page in a real browser: a compliance officer logs in, records a person's
erasure request from the form, finds it in the queue with its due date, and opens it.
What the page says is checked against what the API says of the request."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.portal.browser.conftest import (
    Portal,
    Screenshot,
    error_beside,
    first_log_in,
    log_in,
)

pytestmark = pytest.mark.slow

PERSON = "+12025550163"


async def test_a_compliance_officer_records_an_erasure_and_opens_it_from_the_queue(
        page: Page, portal: Portal, screenshot: Screenshot) -> None:
    officer = first_log_in(portal, portal.new_person("compliance"))
    await page.goto("/portal/login")
    await log_in(page, officer)
    await page.wait_for_url(re.compile(r".*/portal/messages$"))
    await page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Privacy").click()
    await page.wait_for_url(re.compile(r".*/portal/privacy$"))
    await expect(page.get_by_role("heading", name="Data subject requests")).to_be_visible()

    # Sent empty: refused beside the field, nothing recorded.
    await page.get_by_role("button", name="Record the request").click()
    await expect(error_beside(page, "Number or address")).to_have_text(
        "Number or address: this field is required.")

    await page.get_by_label("Type of request").select_option("erasure")
    await page.get_by_label("The person, by their").select_option("number")
    await page.get_by_label("Number or address", exact=True).fill(PERSON)
    await page.get_by_label("What the person asked (optional)").fill(
        "Phoned on Monday: wants every message to them deleted.")
    await page.get_by_role("button", name="Record the request").click()
    await page.wait_for_url(re.compile(r".*/portal/privacy\?recorded=1$"))
    await expect(page.get_by_role("status")).to_contain_text("The request is recorded")

    async with httpx.AsyncClient(base_url=portal.url, timeout=10.0, headers={
            "Authorization": f"Bearer {officer.api_key}"}) as api:
        listed = await api.get("/v1/privacy/requests")
    assert listed.status_code == 200, listed.text
    [made] = listed.json()
    assert (made["type"], made["source"]) == ("erasure", "portal")
    due = datetime.fromisoformat(made["due_at"]).strftime("%Y-%m-%d")

    row = page.locator("#requests tbody tr").filter(has_text=made["id"])
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("erasure")
    await expect(row.locator("time")).to_have_text(due)
    await screenshot(page, "privacy")

    await row.get_by_role("link", name=made["id"]).click()
    await page.wait_for_url(f"**/portal/privacy/requests/{made['id']}")
    await expect(page.get_by_role("heading", name=f"Request {made['id']}")).to_be_visible()
    await expect(page.locator("#deadline time")).to_contain_text(due)
    facts = page.locator("#request")
    await expect(facts).to_contain_text("erasure")
    await expect(facts).to_contain_text("portal")
    # The server's workers carry the erasure out: once done, the page names nobody.
    await carried_out(portal, officer.api_key, made["id"])
    await page.reload()
    await expect(facts).to_contain_text("completed")
    await expect(facts).to_contain_text("erased")
    await expect(facts).not_to_contain_text(PERSON)
    await screenshot(page, "privacy-request")


async def carried_out(portal: Portal, api_key: str, request_id: str,
                      timeout: float = 20.0) -> None:
    """Until the request is no longer open, as the API says (seconds)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=portal.url, timeout=10.0, headers={
            "Authorization": f"Bearer {api_key}"}) as api:
        while True:
            found = await api.get(f"/v1/privacy/requests/{request_id}")
            assert found.status_code == 200, found.text
            if found.json()["status"] not in ("received", "in_progress"):
                return
            assert time.monotonic() < deadline, found.text
            await asyncio.sleep(0.2)
