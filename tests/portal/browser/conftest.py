"""The portal in a real browser: Debian's chromium, driven by Playwright's async API,
against a real ``tidings serve`` on SQLite, with people made by the CLI as an operator
makes them.

One server per test file (module scope): a file's tests share its people and messages,
each test makes the messages it looks at, so no test leans on another's. The browser is
launched per test (about a second): Playwright's objects belong to one event loop, and
pytest-asyncio gives each test its own.

Chromium comes from the system (``make test`` installs it), never from ``playwright
install``: that downloads a browser, and CI and the test machines may be offline.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from tests.functional.server import TidingsServer, run_cli, tidings_env
from tests.portal.pages import form_token

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the networking switches Chromium waits on this offline machine for services it
# would ask at start (updates, sync, QUIC probes); the sandbox needs privileges CI lacks.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
# Every test saves what its page shows; `make screenshots` writes them where
# docs/portal.md finds them, a plain test run into build/ (so that it changes no tracked file).
ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / os.environ.get("TIDINGS_SCREENSHOTS_DIR", "build/screenshots")
# Pages answer in milliseconds; a message needs a few seconds to be delivered. Playwright's
# default of 5 s is tight on two cores shared with other processes.
expect.set_options(timeout=10_000)

NEW_PASSWORD = "Copper-Meadow-Violin-88"
SENDER = "Acme"
TOTP_STEP_SECONDS = 30
FINAL_STATUSES = {"delivered", "undelivered", "failed", "expired", "rejected", "canceled"}
_emails = count(1)


@dataclass
class Person:
    """Someone who logs in to the portal: their address, password and, once enrolled,
    the authenticator app's secret; the account's API key, for what a client's systems
    send."""

    email: str
    password: str
    account_id: str
    api_key: str
    totp_secret: str | None = None
    last_step: int = 0  # the authenticator code last used: the server takes each once
    session_cookie: str | None = None

    async def fresh_code(self) -> str:
        """The authenticator's code for a time step not used yet.

        The server takes a code once, and also the next step's (RFC 6238's slack for a
        clock a little behind), so a second log-in within 30 s uses the code the app is
        about to show; only a third waits for the next step, as a person would.
        """
        assert self.totp_secret, "this person has no second factor yet"
        now = time.time()
        step = max(int(now) // TOTP_STEP_SECONDS, self.last_step + 1)
        usable_from = (step - 1) * TOTP_STEP_SECONDS
        if usable_from > now:
            await asyncio.sleep(usable_from - now + 0.1)
        self.last_step = step
        return pyotp.TOTP(self.totp_secret).at(step * TOTP_STEP_SECONDS)

    def code_now(self) -> str:
        """The code the app shows now (enrolment), remembered as used."""
        assert self.totp_secret
        self.last_step = int(time.time()) // TOTP_STEP_SECONDS
        return pyotp.TOTP(self.totp_secret).now()


@dataclass
class Portal:
    """The running server, with what an operator and a client's systems do beside the
    browser: the CLI, and the API with an account's key."""

    server: TidingsServer
    people: list[Person] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def cli_json(self, *args: str) -> dict[str, Any]:
        done = run_cli(self.server.env, *args, "--json")
        assert done.returncode == 0, f"tidings {' '.join(args)}: {done.stderr}"
        found: dict[str, Any] = json.loads(done.stdout)
        return found

    def new_person(self, role: str = "owner") -> Person:
        """An account and a user of it, as the operator makes them: the temporary
        password the CLI prints is all the person knows."""
        number = next(_emails)
        account = self.cli_json("accounts", "create", "--name", f"Acme {number}")
        email = f"{role}{number}@example.com"
        user = self.cli_json("users", "create", "--account", account["id"], "--email", email,
                             "--role", role)
        return Person(email=email, password=user["temporary_password"],
                      account_id=account["id"], api_key=account["api_key"])

    async def send_by_api(self, person: Person, to: str, body: str = "Hello") -> str:
        """A message sent by the account's own systems; its id."""
        async with self._api(person) as client:
            sent = await client.post("/v1/messages", json={
                "to": to, "from": SENDER, "body": body, "channel": "sms"})
        assert sent.status_code in (200, 201, 202), sent.text
        message_id: str = sent.json()["id"]
        return message_id

    async def messages_to(self, person: Person, to: str) -> list[dict[str, Any]]:
        """What the API says was sent to ``to``: the truth behind what a page shows."""
        async with self._api(person) as client:
            found = await client.get("/v1/messages", params={"to": to, "limit": 100})
        assert found.status_code == 200, found.text
        data: list[dict[str, Any]] = found.json()["data"]
        return data

    async def message_count(self, person: Person) -> int:
        async with self._api(person) as client:
            found = await client.get("/v1/messages", params={"limit": 1000})
        assert found.status_code == 200, found.text
        return len(found.json()["data"])

    async def wait_until_final(self, person: Person, message_ids: list[str],
                               timeout: float = 20.0) -> None:
        """Until the sandbox carrier has settled every one of ``message_ids`` (seconds).

        The list page does not refresh itself, so a test waits here before it looks.
        """
        deadline = time.monotonic() + timeout
        async with self._api(person) as client:
            for message_id in message_ids:
                while True:
                    status = (await client.get(f"/v1/messages/{message_id}")).json()["status"]
                    if status in FINAL_STATUSES:
                        break
                    assert time.monotonic() < deadline, f"{message_id} still {status}"
                    await asyncio.sleep(0.2)

    def _api(self, person: Person) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10.0,
                                 headers={"Authorization": f"Bearer {person.api_key}"})


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """``tidings serve`` on SQLite in a directory of its own, for this test file."""
    data_dir = tmp_path_factory.mktemp("portal") / "data"
    server = TidingsServer(data_dir, tidings_env(data_dir))
    server.start()
    try:
        yield Portal(server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def owner(portal: Portal) -> Person:
    """An owner who has been through the first log-in already (password changed, second
    factor enrolled), with an open session. The first log-in itself is tested in the
    browser (test_first_login.py); here it is the forms posted as a browser posts them.
    """
    return first_log_in(portal, portal.new_person("owner"), landing="/portal")


def first_log_in(portal: Portal, person: Person, *, landing: str | None = None) -> Person:
    """``person``'s first log-in, the forms posted as a browser posts them: the temporary
    password changed, a second factor enrolled; the session kept on ``person``. With
    ``landing``, the log-in must lead there."""
    with httpx.Client(base_url=portal.url, timeout=10.0) as browser:
        login = browser.get("/portal/login")
        signed = browser.post("/portal/login", data={
            "_csrf": form_token(login), "email": person.email, "password": person.password})
        assert signed.status_code == 303, signed.text[:500]
        if landing is not None:
            assert signed.headers.get("location") == landing, signed.text[:500]
        page = browser.get("/portal/password")
        changed = browser.post("/portal/password", data={
            "_csrf": form_token(page), "current_password": person.password,
            "new_password": NEW_PASSWORD})
        assert changed.status_code == 303, changed.text[:500]
        person.password = NEW_PASSWORD
        page = browser.get("/portal/mfa")
        secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page.text)
        assert secret, page.text[:500]
        person.totp_secret = secret.group(1)
        enrolled = browser.post("/portal/mfa", data={
            "_csrf": form_token(page), "code": person.code_now()})
        assert 'id="recovery-codes"' in enrolled.text, enrolled.text[:500]
        person.session_cookie = browser.cookies["tidings_session"]
    return person


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: `make test` installs Debian's")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def new_context(browser: Browser, portal: Portal,
                      viewport: ViewportSize = DESKTOP) -> BrowserContext:
    """A fresh browser profile (no cookies) that speaks English at ``viewport``."""
    phone = viewport == PHONE
    return await browser.new_context(
        base_url=portal.url, viewport=viewport, locale="en-GB", is_mobile=phone,
        has_touch=phone)


@pytest.fixture
async def page(browser: Browser, portal: Portal) -> AsyncIterator[Page]:
    """A tab of a fresh profile: nobody logged in."""
    context = await new_context(browser, portal)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def sign_in(context: BrowserContext, portal: Portal, person: Person) -> None:
    """Give ``context`` the session cookie of ``person``: logged in, as after the form."""
    assert person.session_cookie
    await context.add_cookies([{"name": "tidings_session", "value": person.session_cookie,
                                "url": portal.url}])


@pytest.fixture
async def owner_page(page: Page, portal: Portal, owner: Person) -> Page:
    """A tab where ``owner`` is logged in."""
    await sign_in(page.context, portal, owner)
    return page


@pytest.fixture
def phone_page(browser: Browser, portal: Portal,
               owner: Person) -> Callable[[], Awaitable[Page]]:
    """A tab at a phone's width where ``owner`` is logged in (made when asked for)."""

    async def open_phone_page() -> Page:
        context = await new_context(browser, portal, PHONE)
        await sign_in(context, portal, owner)
        return await context.new_page()

    return open_phone_page


Screenshot = Callable[[Page, str], Awaitable[Path]]


@pytest.fixture
def screenshot() -> Screenshot:
    """Save what ``page`` shows, at its viewport, as ``<name>.png`` in ``SCREENSHOTS``:
    the pictures docs/portal.md shows, made by the tests so that they follow the pages."""

    async def save(page: Page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await page.screenshot(path=str(path), animations="disabled", caret="hide")
        return path

    return save


async def log_in(page: Page, person: Person, *, password: str | None = None) -> None:
    """Fill the log-in form (on the page already) as the person does: Email, Password,
    then the authenticator's Code when they have a second factor."""
    await page.get_by_label("Email").fill(person.email)
    await page.get_by_label("Password").fill(password or person.password)
    await page.get_by_role("button", name="Log in").click()
    if person.totp_secret:
        await page.get_by_label("Code").fill(await person.fresh_code())
        await page.get_by_role("button", name="Log in").click()


def cookie_names(cookies: list[Any]) -> set[str]:
    return {cookie["name"] for cookie in cookies}


def error_beside(page: Page, label: str) -> Locator:
    """The error message shown in the same field as the control labelled ``label``."""
    control = page.get_by_label(label, exact=True)
    return page.locator(".field").filter(has=control).locator(".error")
