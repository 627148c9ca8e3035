"""A policy change in a real browser: the operator publishes a new privacy policy with
the CLI; the server's worker tells every client. A client's compliance officer sees
the notice on the log-in page, logs in, finds the version on the Policies page, reads
what changes and the whole text, and objects in writing. What the page says is checked
against what the API says, and the public page shows the version announced."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.portal.browser.conftest import (
    Person,
    Portal,
    Screenshot,
    error_beside,
    first_log_in,
    log_in,
)

pytestmark = pytest.mark.slow

SUMMARY = "Message bodies are now kept for 60 days instead of 90."
TEXT = "# Privacy Policy\n\n## Retention\n\nWe keep message bodies for 60 days.\n"
REASON = "Our customers were promised 90 days; we need time to tell them."


async def notices_of(portal: Portal, person: Person, timeout: float = 20.0
                     ) -> list[dict[str, Any]]:
    """The account's policy notices, once the server's worker has told it."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=portal.url, timeout=10.0, headers={
            "Authorization": f"Bearer {person.api_key}"}) as api:
        while True:
            listed = await api.get("/v1/policies")
            assert listed.status_code == 200, listed.text
            if listed.json():
                found: list[dict[str, Any]] = listed.json()
                return found
            assert time.monotonic() < deadline, "the account was never told"
            await asyncio.sleep(0.3)


async def test_a_client_reads_a_new_version_and_objects(
        page: Page, portal: Portal, screenshot: Screenshot, tmp_path: Path) -> None:
    officer = first_log_in(portal, portal.new_person("compliance"))
    text = tmp_path / "privacy.md"
    text.write_text(TEXT)
    published = portal.cli_json("policies", "publish", "--kind", "privacy_policy",
                                "--version", "2027-01", "--title", "Privacy Policy",
                                "--summary", SUMMARY, "--text-file", str(text))
    [notice] = await notices_of(portal, officer)
    assert (notice["id"], notice["state"]) == (published["id"], "pending")
    effective = published["effective_at"][:10]

    # The log-in page says a change is coming, with a link to it.
    await page.goto("/portal/login")
    announced = page.locator('[data-upcoming="privacy_policy"]')
    await expect(announced).to_have_text(
        f"Our Privacy Policy changes on {effective}: read the new version.")
    await log_in(page, officer)
    await page.wait_for_url(re.compile(r".*/portal/messages$"))
    await page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Policies").click()
    await page.wait_for_url(re.compile(r".*/portal/policies$"))
    row = page.locator(f"#policy-{published['id']}")
    await expect(row.locator(f'[data-state="{published["id"]}"]')).to_have_text(
        "pending: you may object")
    await row.get_by_role("link", name="Privacy Policy").click()
    await page.wait_for_url(f"**/portal/policies/{published['id']}")
    await expect(page.get_by_role("heading", name="Privacy Policy, version 2027-01")
                 ).to_be_visible()
    await expect(page.locator("#summary")).to_contain_text(SUMMARY)
    await expect(page.locator("#text")).to_contain_text("We keep message bodies for 60 days.")
    await screenshot(page, "portal-policy")

    # Sent empty: refused beside the field, nothing recorded.
    await page.get_by_role("button", name="Object").click()
    await expect(error_beside(page, "Your reason for objecting")).to_have_text(
        "Your reason: this field is required.")
    await page.get_by_label("Your reason for objecting").fill(REASON)
    await page.get_by_role("button", name="Object").click()
    await page.wait_for_url(re.compile(rf".*/portal/policies/{published['id']}\?answered=1$"))
    await expect(page.get_by_role("status")).to_have_text("Your answer is recorded.")
    await expect(page.locator("#state .status")).to_have_text("objected")
    await expect(page.locator("#objection")).to_have_text(REASON)
    await expect(page.get_by_role("button", name="Object")).to_have_count(0)

    [answered] = await notices_of(portal, officer)
    assert (answered["state"], answered["objection_reason"]) == ("objected", REASON)
    shown = portal.cli_json("policies", "show", published["id"])
    [mine] = [r for r in shown["responses"] if r["account_id"] == officer.account_id]
    assert (mine["state"], mine["objection_reason"]) == ("objected", REASON)

    # The public page, without logging in: nothing in force yet, this one announced.
    await page.context.clear_cookies()
    await page.goto("/legal/privacy_policy")
    await expect(page.locator("#in-force")).to_have_text("No version is in force yet.")
    await page.get_by_role("link", name="Privacy Policy, version 2027-01").click()
    await page.wait_for_url("**/legal/privacy_policy/2027-01")
    await expect(page.locator("#text")).to_contain_text("We keep message bodies")
