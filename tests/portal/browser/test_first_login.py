"""A person's first steps in the portal, in a real browser: the temporary password from
the CLI, the forced change of it, the second factor, the recovery codes, the dashboard;
then logging in again with the code, and a wrong password refused."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.portal.browser.conftest import (
    NEW_PASSWORD,
    Person,
    Portal,
    Screenshot,
    cookie_names,
    error_beside,
    log_in,
)

pytestmark = pytest.mark.slow


async def change_the_temporary_password(page: Page, person: Person) -> None:
    """The page the first log-in leads to: the temporary password for a chosen one."""
    await page.wait_for_url("**/portal/password")
    await expect(page.locator(".notice")).to_contain_text("temporary")
    await page.get_by_label("Current password").fill(person.password)
    await page.get_by_label("New password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Change password").click()
    person.password = NEW_PASSWORD


async def test_a_new_owner_changes_the_password_enrols_a_second_factor_and_sees_the_dashboard(
        page: Page, portal: Portal, screenshot: Screenshot) -> None:
    ann = portal.new_person("owner")
    # Something for the dashboard to count: the account's systems sent three messages.
    sent = [await portal.send_by_api(ann, to) for to in
            ("+12025550173", "+12025550174", "+12025550101")]  # the last one fails

    await page.goto("/portal")
    await page.wait_for_url("**/portal/login?next=/portal")
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await screenshot(page, "login")
    await log_in(page, ann)

    await change_the_temporary_password(page, ann)

    await page.wait_for_url("**/portal/mfa")
    await expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    ann.totp_secret = (await page.locator("#totp-secret").inner_text()).strip()
    await screenshot(page, "mfa")
    await page.get_by_label("Code").fill(ann.code_now())
    await page.get_by_role("button", name="Turn on").click()

    await expect(page.get_by_role("status")).to_have_text("Two-factor authentication is on.")
    await expect(page.locator("#recovery-codes li")).to_have_count(10)
    await page.get_by_role("link", name="Continue").click()

    await page.wait_for_url("**/portal/dashboard")
    await expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    await portal.wait_until_final(ann, sent)
    await page.reload()
    today = page.locator(".tile").filter(has_text="Today")
    await expect(today.locator('[data-stat="total"]')).to_have_text("3")
    await expect(today.locator('[data-stat="delivered"]')).to_have_text("2")
    await expect(today.locator('[data-stat="failed"]')).to_have_text("1")
    await expect(page.get_by_role("link", name="sandbox_failed")).to_be_visible()
    await screenshot(page, "dashboard")


async def test_the_enrolment_page_shows_a_qr_code_an_app_can_scan(
        page: Page, portal: Portal) -> None:
    cleo = portal.new_person("admin")
    await page.goto("/portal/login")
    await log_in(page, cleo)
    await change_the_temporary_password(page, cleo)
    await page.wait_for_url("**/portal/mfa")

    qr = page.get_by_role("img", name="QR code for your authenticator app")
    await expect(qr).to_be_visible()
    # A picture the browser could not draw shows its alt text instead, and is still
    # "visible": its drawn size says whether there is a picture.
    drawn = await qr.evaluate("img => img.decode().then(() => img.naturalWidth, () => 0)")
    assert drawn > 0, "the QR code is not drawn: nothing for the app to scan"


async def test_a_wrong_current_password_is_shown_beside_that_field(
        page: Page, portal: Portal) -> None:
    bob = portal.new_person("owner")
    await page.goto("/portal/login")
    await log_in(page, bob)
    await page.wait_for_url("**/portal/password")

    await page.get_by_label("Current password").fill("Not-The-Temporary-One-1")
    await page.get_by_label("New password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Change password").click()

    await expect(error_beside(page, "Current password")).to_have_text(
        "The current password is wrong.")
    await expect(error_beside(page, "New password")).to_have_count(0)


async def test_logging_in_again_asks_for_the_code_and_a_wrong_password_is_refused(
        page: Page, owner: Person) -> None:
    await page.goto("/portal/login")
    await page.get_by_label("Email").fill(owner.email)
    await page.get_by_label("Password").fill("Copper-Meadow-Violin-89")
    await page.get_by_role("button", name="Log in").click()

    await expect(error_beside(page, "Password")).to_have_text(
        "The e-mail address or the password is wrong.")
    await expect(page.get_by_label("Password")).to_have_accessible_description(
        "The e-mail address or the password is wrong.")
    await expect(page.get_by_label("Email")).to_have_value(owner.email)
    assert "tidings_session" not in cookie_names(await page.context.cookies())

    await page.get_by_label("Password").fill(owner.password)
    await page.get_by_role("button", name="Log in").click()
    code = page.get_by_label("Code")
    await expect(code).to_be_visible()
    assert "tidings_session" not in cookie_names(await page.context.cookies())
    await code.fill(await owner.fresh_code())
    await page.get_by_role("button", name="Log in").click()

    await page.wait_for_url("**/portal/dashboard")
    await expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    assert "tidings_session" in cookie_names(await page.context.cookies())

    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(re.compile(r".*/portal/login$"))
    assert "tidings_session" not in cookie_names(await page.context.cookies())
    await page.goto("/portal/dashboard")
    await page.wait_for_url("**/portal/login?next=/portal/dashboard")
