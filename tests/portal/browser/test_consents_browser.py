"""The consents page in a real browser: an owner records a person's opt-in with its
proof (sent first without one: refused beside the field), finds the person in force,
imports a CSV with a bad row and reads the report. What the page says is checked
against what the API says of the person."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.portal.browser.conftest import Person, Portal, Screenshot, error_beside

pytestmark = pytest.mark.slow

PERSON = "+12025550181"
HEADER = "number,email,channel,purpose,mechanism,source,evidence_ref"


async def test_an_owner_records_an_opt_in_finds_it_in_force_and_imports_a_list(
        owner_page: Page, portal: Portal, owner: Person, screenshot: Screenshot,
        tmp_path: Path) -> None:
    page = owner_page
    await page.goto("/portal")
    await page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Consents").click()
    await page.wait_for_url(re.compile(r".*/portal/consents$"))
    await expect(page.get_by_role("heading", name="Record a consent event")).to_be_visible()

    # Sent without its proof: refused beside the field, nothing recorded.
    await page.get_by_label("Their number or address").fill(PERSON)
    await page.get_by_role("button", name="Record the event").click()
    await expect(error_beside(page, "Evidence")).to_have_text("Evidence: this field is required.")

    await page.get_by_label("Their number or address").fill(PERSON)
    await page.get_by_label("Channel of the consent").select_option("sms")
    await page.get_by_label("Purpose").select_option("marketing")
    await page.get_by_label("Event").select_option("opt_in")
    await page.get_by_label("Where it was captured").select_option("web_form")
    await page.get_by_label("Evidence").fill("Sign-up form 4412, box ticked")
    await page.get_by_role("button", name="Record the event").click()
    await page.wait_for_url(re.compile(r".*/portal/consents\?.*recorded=1$"))
    await expect(page.get_by_role("status")).to_contain_text("The consent event is recorded")
    in_force = page.locator('#state tr[data-channel="sms"][data-purpose="marketing"]')
    await expect(in_force).to_contain_text("in force")
    await expect(page.locator("#events")).to_contain_text("Sign-up form 4412, box ticked")
    await screenshot(page, "consents")

    async with httpx.AsyncClient(base_url=portal.url, timeout=10.0, headers={
            "Authorization": f"Bearer {owner.api_key}"}) as api:
        shown = await api.get("/v1/consents", params={"number": PERSON})
    assert shown.status_code == 200, shown.text
    assert [(s["channel"], s["in_force"]) for s in shown.json()["state"]] == [("sms", True)]
    [event] = shown.json()["events"]
    assert event["source"] == "web_form"
    assert event["captured_by"].startswith("user:")

    listed = tmp_path / "list.csv"
    listed.write_text(f"{HEADER}\n+12025550182,,sms,marketing,opt_in,import,list row 1\n"
                      "+12025550183,,sms,marketing,opt_in,import,\n")
    await page.get_by_label("CSV file").set_input_files(str(listed))
    await page.get_by_role("button", name="Import").click()
    report = page.locator("#import-report")
    await expect(report).to_contain_text("Imported: 1; refused: 1")
    await expect(report.locator("tbody tr")).to_have_count(1)
    await expect(report.locator("tbody tr")).to_contain_text("evidence_ref")
