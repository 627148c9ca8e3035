"""The breach register in a real browser: a member of the operator's staff logs in to
the console with a second factor, records a breach from the form (when it was detected,
when the operator became aware, every field the DPA asks for, a scope naming a client's
account), finds it in the register with its 48-hour clock, opens it and notifies the
clients: the notice to the client shows, with the id of the mail its owner was sent.
The mail id is checked against the server's local mailbox.

The server keeps its own clock, so the times are set relative to now: the breach
became known two hours ago, which leaves between 45 and 46 hours on its clock."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.functional.server import run_cli
from tests.portal.browser.conftest import Person, Portal, Screenshot, first_log_in, log_in

pytestmark = pytest.mark.slow

RECIPIENT = "+12025550171"  # a person the client wrote to, in the breach's window
PHONE = "user.contact.phone_number"
CONTENT = "user.content.private"
FIELD_TIME = "%Y-%m-%dT%H:%M"  # what a datetime-local field takes
SHOWN_TIME = "%Y-%m-%d %H:%M"  # what the pages show


def new_staff(portal: Portal) -> Person:
    """A member of the operator's staff, as the CLI makes one: a temporary password."""
    email = "ops-breaches@example.com"
    made = portal.cli_json("users", "create", "--operator", "--email", email,
                           "--role", "operator")
    return Person(email=email, password=made["temporary_password"], account_id="",
                  api_key="")


async def breach_mail_to(portal: Portal, email: str, timeout: float = 20.0) -> dict[str, Any]:
    """The breach notice in the server's local mailbox to ``email``, once the server's
    mail sender has put it there."""
    deadline = time.monotonic() + timeout
    while True:
        done = await asyncio.to_thread(run_cli, portal.server.env, "mail", "list", "--to",
                                       email, "--json")
        assert done.returncode == 0, done.stderr
        notices = [m for m in json.loads(done.stdout) if m["kind"] == "breach"]
        if notices:
            assert len(notices) == 1, notices
            found: dict[str, Any] = notices[0]
            return found
        assert time.monotonic() < deadline, f"no breach notice mailed to {email}"
        await asyncio.sleep(0.3)


async def test_staff_record_a_breach_see_its_clock_and_notify_the_client(
        page: Page, portal: Portal, screenshot: Screenshot) -> None:
    # A client whose owner gets the notice, and a message of theirs in the breach's window.
    client = portal.new_person("owner")
    await portal.send_by_api(client, RECIPIENT)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    detected, aware = now - timedelta(hours=3), now - timedelta(hours=2)
    due = aware + timedelta(hours=48)
    # The window runs to the next minute, past the message sent above (its end is not
    # included, and a datetime-local field holds minutes).
    window_start, window_end = now - timedelta(days=1), now + timedelta(minutes=1)

    staff = first_log_in(portal, new_staff(portal))
    await page.goto("/operator")
    await page.wait_for_url(re.compile(r".*/portal/login\?next=.*"))
    await log_in(page, staff)
    await page.wait_for_url(re.compile(r".*/operator$"))
    await page.get_by_role("banner").get_by_role("navigation").get_by_role(
        "link", name="Breaches").click()
    await page.wait_for_url(re.compile(r".*/operator/breaches$"))
    await expect(page.get_by_role("heading", name="Breaches", level=1)).to_be_visible()
    await expect(page.get_by_text("No breaches recorded.")).to_be_visible()

    # The form: the two times, then what is known of the breach.
    await page.get_by_label("Detected (UTC)").fill(detected.strftime(FIELD_TIME))
    await page.get_by_label("The operator became aware (UTC)").fill(
        aware.strftime(FIELD_TIME))
    await page.get_by_label("Nature", exact=True).select_option("confidentiality")
    await page.get_by_label("What happened").fill(
        "A database backup was readable from the internet for six hours.")
    await page.get_by_label("Categories of people").fill("message recipients")
    await page.get_by_label("About how many people").fill("1-10")
    records = page.get_by_role("group", name="Categories of personal data")
    await records.get_by_label(PHONE, exact=True).check()
    await records.get_by_label(CONTENT, exact=True).check()
    await page.get_by_label("About how many records").fill("1-10")
    await page.get_by_label("Likely consequences").fill("Unsolicited messages.")
    await page.get_by_label("Measures taken or proposed").fill(
        "The backup was removed and its storage closed to the internet.")
    await page.get_by_label("Contact point").fill("dpo@tidings.example")
    await page.get_by_label("Accounts, one a line").fill(client.account_id)
    await page.get_by_label("From (UTC)").fill(window_start.strftime(FIELD_TIME))
    await page.get_by_label("Until (UTC, not included)").fill(
        window_end.strftime(FIELD_TIME))
    await page.get_by_role("group", name="Data categories reached").get_by_label(
        PHONE, exact=True).check()
    await page.get_by_role("button", name="Record").click()

    # Recorded: its page, then back to the register, where its clock runs.
    await page.wait_for_url(re.compile(r".*/operator/breaches/brc_\w+$"))
    breach_id = page.url.rsplit("/", 1)[-1]
    await expect(page.get_by_role("heading", name=f"Breach {breach_id}")).to_be_visible()
    await page.get_by_role("link", name="← Breaches").click()
    await page.wait_for_url(re.compile(r".*/operator/breaches$"))
    row = page.locator(f"#breach-{breach_id}")
    await expect(row.locator(".status")).to_have_text("open")
    await expect(row).to_contain_text("confidentiality")
    await expect(row).to_contain_text(aware.strftime(SHOWN_TIME))
    await expect(row.locator("time")).to_have_text(due.strftime(SHOWN_TIME))
    await expect(row.locator(f'[data-clock="{breach_id}"]')).to_have_text(
        re.compile(r"^due in 4[56] h \d\d min$"))
    await screenshot(page, "operator-breaches")

    # Its page: the clock, the version as recorded, nothing lacking for a notice.
    await row.get_by_role("link", name=breach_id).click()
    await page.wait_for_url(f"**/operator/breaches/{breach_id}")
    clock = page.locator("#clock")
    await expect(clock.locator(".status")).to_have_text("open")
    await expect(clock).to_contain_text(f"{detected.strftime(SHOWN_TIME)} UTC")
    await expect(clock).to_contain_text(f"{due.strftime(SHOWN_TIME)} UTC: due in")
    current = page.locator("#current")
    await expect(current.get_by_role("heading", name="Version 1")).to_be_visible()
    await expect(current).to_contain_text("A database backup was readable")
    await expect(current).to_contain_text(client.account_id)
    await expect(page.locator("#missing")).to_have_count(0)
    notices = page.locator("#notices")
    await expect(notices).to_contain_text("No client notified yet.")

    await page.get_by_role("button", name="Notify the clients").click()
    await page.wait_for_url(f"**/operator/breaches/{breach_id}#notices")
    await expect(clock.locator(".status")).to_have_text("notified")
    await expect(clock.locator(f'[data-clock="{breach_id}"]')).to_have_text(
        "notified in time")
    await expect(clock).to_contain_text("(version 1)")
    await expect(page.get_by_role("button", name=re.compile("^Notify"))).to_have_count(0)
    # One notice, to the client: its version, the mail sent to its owner, and the one
    # person and one record the client's message counts for.
    notice = notices.locator("tbody tr")
    await expect(notice).to_have_count(1)
    cells = notice.locator("td")
    await expect(cells.nth(0)).to_have_text(client.account_id)
    await expect(cells.nth(1)).to_have_text("1")
    await expect(cells.nth(3).locator("code")).to_have_text(re.compile(r"^mail_\w+$"))
    await expect(cells.nth(4)).to_have_text("1")
    await expect(cells.nth(5)).to_have_text("1")
    await screenshot(page, "operator-breach")

    mail_id = (await cells.nth(3).locator("code").inner_text()).strip()
    mailed = await breach_mail_to(portal, client.email)
    assert mailed["id"] == mail_id, mailed
    assert breach_id in mailed["subject"], mailed["subject"]
