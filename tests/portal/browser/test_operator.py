"""The operator's console in a real browser: a member of the staff's first log-in (a new
password, a second factor) to the platform page; an account that signed up waiting for
verification, verified as a trial; a rejection without a reason refused; an account
suspended, its key refused; the connectors; and a client's user kept out.

The client's side of a sign-up (the API, the mail in the local mailbox read with
``tidings mail list``) is done as the client's programs would, with httpx; the
browser is the staff's."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count

import httpx
import pyotp
import pytest
from playwright.async_api import Locator, Page, expect

from tests.functional.server import TidingsServer, run_cli, tidings_env
from tests.portal.browser.conftest import (
    NEW_PASSWORD,
    Person,
    Portal,
    Screenshot,
    first_log_in,
    log_in,
    sign_in,
)

pytestmark = pytest.mark.slow

SIGNUP_PASSWORD = "Copper-Kettle-Meadow-93"
DETAILS = {"legal_name": "Nimbus Labs GmbH", "country": "DE",
           "registration_number": "HRB 123456", "contact_name": "Ada Nimbus",
           "contact_email": "ada@nimbus.example", "contact_phone": "+4915123456789",
           "intended_use": "Appointment reminders for our clinics."}
_staff = count(1)
_signups = count(1)


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """``tidings serve`` as the conftest's, with sign-up open: clients sign up here."""
    data_dir = tmp_path_factory.mktemp("portal") / "data"
    server = TidingsServer(data_dir, tidings_env(data_dir, signup="open"))
    server.start()
    try:
        yield Portal(server)
    finally:
        server.stop()


def new_staff(portal: Portal) -> Person:
    """A member of the operator's staff, as the CLI makes one: a temporary password."""
    email = f"ops{next(_staff)}@example.com"
    made = portal.cli_json("users", "create", "--operator", "--email", email,
                           "--role", "operator")
    return Person(email=email, password=made["temporary_password"], account_id="",
                  api_key="")


@pytest.fixture(scope="module")
def staff(portal: Portal) -> Person:
    """Staff who have been through the first log-in (the forms posted as a browser posts
    them; the browser's own first log-in is a test below), with an open session."""
    return first_log_in(portal, new_staff(portal))


@pytest.fixture
async def staff_page(page: Page, portal: Portal, staff: Person) -> Page:
    await sign_in(page.context, portal, staff)
    return page


@dataclass
class SignedUp:
    """A client that signed up, confirmed its address and submitted its details."""

    account_id: str
    company: str
    session: dict[str, str]  # the owner's bearer header


async def mail_to(portal: Portal, email: str, timeout: float = 20.0) -> str:
    """The newest mail's body to ``email`` in the server's local mailbox."""
    deadline = time.monotonic() + timeout
    while True:
        done = await asyncio.to_thread(run_cli, portal.server.env, "mail", "list", "--to",
                                       email, "--json")
        assert done.returncode == 0, done.stderr
        mails = json.loads(done.stdout)
        if mails:
            body: str = mails[0]["body"]
            return body
        assert time.monotonic() < deadline, f"no mail to {email}"
        await asyncio.sleep(0.3)


async def sign_up(portal: Portal) -> SignedUp:
    """What a new client does over the API, up to waiting for the operator."""
    number = next(_signups)
    company, email = f"Nimbus Labs {number}", f"founder{number}@nimbus.example"
    async with httpx.AsyncClient(base_url=portal.url, timeout=10.0) as client:
        signed = await client.post("/v1/signup", json={
            "company": company, "email": email, "password": SIGNUP_PASSWORD,
            "country": "DE"})
        assert signed.status_code == 202, signed.text
        token = re.search(r"/signup/confirm\?token=([A-Za-z0-9_-]+)",
                          await mail_to(portal, email))
        assert token, "no confirmation link in the mail"
        confirmed = await client.post("/v1/signup/confirm", json={"token": token.group(1)})
        assert confirmed.status_code == 200, confirmed.text

        login = await client.post("/v1/auth/login", json={
            "email": email, "password": SIGNUP_PASSWORD})
        assert login.status_code == 200, login.text
        session = {"Authorization": f"Bearer {login.json()['token']}"}
        enrol = await client.post("/v1/auth/mfa/totp", headers=session)
        assert enrol.status_code == 200, enrol.text
        enrolled = await client.post("/v1/auth/mfa/totp/confirm", headers=session, json={
            "code": pyotp.TOTP(enrol.json()["secret"]).now()})
        assert enrolled.status_code == 200, enrolled.text
        submitted = await client.put("/v1/account/verification", headers=session,
                                     json=DETAILS)
        assert submitted.status_code == 200, submitted.text
        account = (await client.get("/v1/account", headers=session)).json()
    assert account["status"] == "pending_verification", account
    return SignedUp(account["id"], company, session)


async def account_status(portal: Portal, headers: dict[str, str]) -> str:
    async with httpx.AsyncClient(base_url=portal.url, timeout=10.0) as client:
        found = await client.get("/v1/account", headers=headers)
    assert found.status_code == 200, found.text
    status: str = found.json()["status"]
    return status


async def decide(form: Locator, decision: str, reason: str = "") -> None:
    """Choose a decision in an account's form, give the reason, Apply."""
    await form.get_by_label("Decision").select_option(label=decision)
    await form.get_by_label("Reason").fill(reason)
    await form.get_by_role("button", name="Apply").click()


async def test_new_staff_change_the_password_enrol_a_second_factor_and_see_the_platform(
        page: Page, portal: Portal, screenshot: Screenshot) -> None:
    ops = new_staff(portal)
    await page.goto("/operator")
    await page.wait_for_url(re.compile(r".*/portal/login\?next=.*"))
    await log_in(page, ops)

    await page.wait_for_url("**/portal/password")
    await page.get_by_label("Current password").fill(ops.password)
    await page.get_by_label("New password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Change password").click()
    ops.password = NEW_PASSWORD

    await page.wait_for_url("**/portal/mfa")
    ops.totp_secret = (await page.locator("#totp-secret").inner_text()).strip()
    await page.get_by_label("Code").fill(ops.code_now())
    await page.get_by_role("button", name="Turn on").click()
    await expect(page.locator("#recovery-codes li")).to_have_count(10)
    await page.get_by_role("link", name="Continue").click()

    await page.wait_for_url(re.compile(r".*/operator$"))
    await expect(page.get_by_role("heading", name="Platform", level=1)).to_be_visible()
    # The staff's menu: the console's pages, none of a client's.
    menu = page.get_by_role("banner").get_by_role("navigation")
    await expect(menu.get_by_role("link")).to_have_text(
        ["Platform", "Accounts", "Connectors", "Traffic", "Breaches", "Sub-processors",
         "Policies"])
    await expect(page.locator('[data-stat="per-minute"]')).to_have_text(re.compile(r"^\d"))
    await expect(page.locator('[data-stat="webhooks-pending"]')).to_have_text(
        re.compile(r"^\d"))
    await screenshot(page, "operator")


async def test_an_account_that_signed_up_is_verified_as_a_trial(
        staff_page: Page, portal: Portal, screenshot: Screenshot) -> None:
    client = await sign_up(portal)
    page = staff_page
    await page.goto("/operator/accounts")
    waiting = page.locator(f"#verify-{client.account_id}")
    await expect(waiting.get_by_role("heading", level=3)).to_contain_text(client.company)
    facts = waiting.locator("dl.facts")
    await expect(facts).to_contain_text("Nimbus Labs GmbH")
    await expect(facts).to_contain_text("HRB 123456")
    await expect(facts).to_contain_text("Ada Nimbus")
    await expect(facts).to_contain_text(DETAILS["intended_use"])
    confirmed = facts.locator("dt", has_text="E-mail confirmed").locator(
        "xpath=following-sibling::dd[1]")
    await expect(confirmed).to_have_text("yes")
    await expect(waiting.get_by_label("Decision").locator("option")).to_have_text(
        ["Verify: trial", "Verify: active", "Reject"])
    await screenshot(page, "operator-accounts")

    await decide(waiting, "Verify: trial", "Welcome aboard.")
    await page.wait_for_url(re.compile(r".*/operator/accounts$"))
    await expect(waiting).to_have_count(0)
    row = page.locator(f"#account-{client.account_id}")
    await expect(row.locator(".status")).to_have_text("trial")
    assert await account_status(portal, client.session) == "trial"


async def test_the_details_waiting_for_verification_are_labelled_in_words(
        staff_page: Page, portal: Portal) -> None:
    """Staff read "Legal name", "Intended use"…: not the API's field names."""
    client = await sign_up(portal)
    page = staff_page
    await page.goto("/operator/accounts")
    labels = page.locator(f"#verify-{client.account_id} dl.facts dt")
    await expect(labels.first).to_be_visible()
    for label in await labels.all_inner_texts():
        assert "_" not in label, f"a field's name shown as its label: {label!r}"


async def test_rejecting_without_a_reason_shows_the_error_beside_the_reason(
        staff_page: Page, portal: Portal) -> None:
    client = await sign_up(portal)
    page = staff_page
    await page.goto("/operator/accounts")
    waiting = page.locator(f"#verify-{client.account_id}")
    await decide(waiting, "Reject")

    reason = waiting.get_by_label("Reason")
    error = waiting.locator(".error")
    await expect(error).to_have_text("Reason: this field is required.")
    await expect(reason).to_have_attribute("aria-invalid", "true")
    await expect(reason).to_have_accessible_description("Reason: this field is required.")
    assert await account_status(portal, client.session) == "pending_verification"


async def test_a_suspended_account_may_not_send_until_reactivated(
        staff_page: Page, portal: Portal) -> None:
    client = portal.new_person("owner")
    async with httpx.AsyncClient(base_url=portal.url, timeout=10.0, headers={
            "Authorization": f"Bearer {client.api_key}"}) as api:
        async def send() -> httpx.Response:
            return await api.post("/v1/messages", json={
                "to": "+12025550179", "from": "Acme", "body": "Hello", "channel": "sms"})

        assert (await send()).status_code in (200, 201, 202)
        page = staff_page
        await page.goto("/operator/accounts")
        row = page.locator(f"#account-{client.account_id}")
        await expect(row.locator(".status")).to_have_text("active")
        await expect(row.get_by_label("Decision").locator("option")).to_have_text(
            ["Suspend", "Reactivate", "Terminate"])

        await decide(row, "Suspend", "Unpaid invoice 42")
        await page.wait_for_url(re.compile(r".*/operator/accounts$"))
        await expect(row.locator(".status")).to_have_text("suspended")
        refused = await send()
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "account_suspended", refused.text
        assert (await api.get("/v1/messages")).status_code == 200  # reading still works

        await decide(row, "Reactivate")
        await page.wait_for_url(re.compile(r".*/operator/accounts$"))
        await expect(row.locator(".status")).to_have_text("active")
        assert (await send()).status_code in (200, 201, 202)


async def test_the_connectors_page_shows_the_sandbox_and_no_routes(
        staff_page: Page, screenshot: Screenshot) -> None:
    page = staff_page
    await page.goto("/operator/connectors")
    await expect(page.get_by_role("heading", name="Connectors", level=1)).to_be_visible()
    await expect(page.get_by_role("link", name="Connectors")).to_have_attribute(
        "aria-current", "page")
    await expect(page.get_by_text(
        "No connectors: messages go to the built-in sandbox.")).to_be_visible()
    await expect(page.get_by_role("heading", name="Routes")).to_be_visible()
    await expect(page.get_by_text("No routes.")).to_be_visible()
    await screenshot(page, "operator-connectors")


async def test_a_clients_user_gets_the_403_page_at_the_console(owner_page: Page) -> None:
    page = owner_page
    for path in ("/operator", "/operator/accounts", "/operator/connectors"):
        answer = await page.goto(path)
        assert answer is not None
        assert answer.status == 403, path
        await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        await expect(page.get_by_role("alert")).to_have_text(
            "These pages are for the operator's staff.")
        await expect(page.get_by_role("link", name="Accounts")).to_have_count(0)
