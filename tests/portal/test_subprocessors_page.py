"""The sub-processors for a client's people (``/portal/privacy/subprocessors``) and for
anyone (``/subprocessors``).

Any member reads the register: in use, coming (with the date it applies to this
account, later for a client told late) and former, with the account's notice; only a
person with ``privacy:manage`` objects, and only to one still coming, from the top
account; garbage, a form without its token and ids that are none change nothing. The
public page shows the register at this instant and nothing of any account."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
from sqlalchemy import select

from tests.api.test_operator_api import ops  # noqa: F401 (the operator-key fixture)
from tests.conftest import Tenant, make_tenant
from tests.portal.pages import field_error, page_error, signed_in
from tests.subprocessors.test_register import DAY, REASON, REGISTER, counts, notify, record
from tests.users.people import person
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.subprocessors.models import SubprocessorNotice

PAGE = "/portal/privacy/subprocessors"
PUBLIC = "/subprocessors"


async def told(client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
               ops: dict[str, str], **changes: Any) -> dict[str, Any]:  # noqa: F811
    """An entry recorded and notified to every client, its notices written."""
    made = await record(client, ops, **changes)
    await notify(client, ops, clock, made["id"])
    await rt.worker_pool().drain()
    return made


def section(page: httpx.Response, name: str) -> str:
    found = re.search(rf'<section id="{name}">(.*?)</section>', page.text, re.S)
    assert found, page.text[-3000:]
    return html.unescape(found.group(1))


def card(page: httpx.Response, sub_id: str) -> str:
    found = re.search(rf'<article class="delivery" id="sub-{sub_id}">(.*?)</article>',
                      page.text, re.S)
    assert found, page.text[-3000:]
    return html.unescape(found.group(1))


def top_error(page: httpx.Response) -> str | None:
    found = re.search(r'<p class="error" role="alert">([^<]*)</p>', page.text)
    return html.unescape(found.group(1)) if found else None


async def objection_of(rt: Runtime, tenant: str) -> SubprocessorNotice | None:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        found: SubprocessorNotice | None = await session.scalar(
            select(SubprocessorNotice).where(SubprocessorNotice.tenant_id == tenant))
    return found


# --------------------------------------------------------------------------- the client


async def test_any_member_reads_the_register_and_only_privacy_managers_object(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    in_use = await record(client, ops, legal_name="In Use Ltd")
    gone = await record(client, ops, legal_name="Gone Ltd")
    coming = await record(client, ops, legal_name="Coming Ltd", countries=["DE"])
    hidden = await record(client, ops, legal_name="Not Told Ltd")
    for made in (in_use, gone):
        await notify(client, ops, clock, made["id"])
    await rt.worker_pool().drain()
    assert (await client.post(f"{REGISTER}/{gone['id']}/retire", headers=ops)).status_code \
        == 200
    clock.advance(31 * DAY)
    await notify(client, ops, clock, coming["id"], days=40)
    await rt.worker_pool().drain()

    token = await signed_in(client, rt, await person(rt, acme.id, "analyst"))
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert f'href="{PAGE}" aria-current="page"' in page.text  # in the menu, for any member
    assert "In Use Ltd" in section(page, "current")
    assert "Gone Ltd" in section(page, "former")
    upcoming = card(page, coming["id"])
    assert "Applies to this account from" in upcoming
    assert "2026-03-13 00:00 UTC" in upcoming  # 31 days, then 40 more
    assert "DE" in upcoming
    assert "Not Told Ltd" not in page.text
    assert hidden["id"] not in page.text
    assert "/objection" not in page.text
    assert 'id="who-objects"' in page.text
    before = await counts(rt)
    refused = await client.post(f"{PAGE}/{coming['id']}/objection",
                                data={"_csrf": token, "reason": REASON})
    assert (refused.status_code, page_error(refused)) == (403, "permission_denied")
    assert await counts(rt) == before

    client.cookies.clear()
    await signed_in(client, rt, await person(rt, acme.id, "compliance"))
    page = await client.get(PAGE)
    assert page.text.count("/objection") == 1  # the one still coming
    assert f'action="{PAGE}/{coming["id"]}/objection"' in page.text
    privacy = await client.get("/portal/privacy")
    assert f'<a href="{PAGE}">' in privacy.text


async def test_an_owner_objects_and_the_page_shows_the_objection_and_its_outcome(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await told(client, rt, clock, ops)
    proposed = await record(client, ops, legal_name="Not Told Ltd")
    token = await signed_in(client, rt, await person(rt, acme.id, "owner"))
    url = f"{PAGE}/{made['id']}/objection"
    field = f"reason-{made['id']}"
    before = await counts(rt)
    for reason, message in (("", "Your reason: this field is required."),
                            ("   ", "Your reason: this field is required."),
                            ("x" * 2001, "Your reason is too long: at most 2000"),
                            ("a\x00b", "Your reason holds characters that cannot")):
        refused = await client.post(url, data={"_csrf": token, "reason": reason})
        assert refused.status_code == 400, reason
        assert (field_error(refused, field) or "").startswith(message), reason
    for bad_token in ("", "x" * 43):
        refused = await client.post(url, data={"_csrf": bad_token, "reason": REASON})
        assert (refused.status_code, page_error(refused)) == (403, "csrf_failed")
    for missing in ("sub_missing", proposed["id"], "x" * 500):
        for reason in (REASON, ""):
            answer = await client.post(f"{PAGE}/{missing}/objection",
                                       data={"_csrf": token, "reason": reason})
            assert (answer.status_code, page_error(answer)) == (404, "subprocessor_not_found")
    assert await counts(rt) == before
    notice = await objection_of(rt, acme.id)
    assert notice is not None
    assert notice.objected_at is None

    clock.advance(10 * DAY)
    token = await signed_in(client, rt, await person(rt, acme.id, "admin"))  # a new session
    objected = await client.post(url, data={"_csrf": token, "reason": REASON + "\r\nThanks."})
    assert objected.status_code == 303, objected.text[-2000:]
    assert objected.headers["location"] == f"{PAGE}?objected={made['id']}#sub-{made['id']}"
    page = await client.get(objected.headers["location"])
    shown = card(page, made["id"])
    assert "Your objection is recorded." in shown
    assert f"2026-01-11 00:00 UTC: {REASON}\nThanks." in re.sub(r"<[^>]+>", "", shown)
    assert "open: until the operator resolves it" in shown
    assert re.search(r"Processes the account's data now</dt><dd[^>]*>no<", shown)
    assert "/objection" not in page.text
    [mine] = (await client.get("/v1/subprocessors", headers=acme.headers)).json()
    assert mine["notice"]["objection_reason"] == REASON + "\nThanks."

    again = await client.post(url, data={"_csrf": token, "reason": "again"})
    assert (again.status_code, top_error(again)) == (400, "This account objected already.")
    resolved = await client.post(f"{REGISTER}/{made['id']}/objections/{acme.id}/resolution",
                                 headers=ops, json={"outcome": "withdrawn",
                                                    "note": "Agreed on a call."})
    assert resolved.status_code == 200, resolved.text
    shown = card(await client.get(PAGE), made["id"])
    assert "withdrawn: it applies to the account from 2026-01-31 00:00 UTC" in shown
    assert "Agreed on a call." in shown


async def test_a_client_told_late_objects_until_its_own_date_then_not(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops)
    await notify(client, ops, clock, made["id"])
    clock.advance(2 * DAY)  # the workers were down: acme is told two days late
    await rt.worker_pool().drain()
    clock.advance(29 * DAY)  # past the register's date, not past acme's
    owner = await person(rt, acme.id, "owner")
    token = await signed_in(client, rt, owner)
    page = await client.get(PAGE)
    assert "2026-02-02 00:00 UTC" in card(page, made["id"])
    assert made["id"] in section(page, "upcoming")
    assert f'action="{PAGE}/{made["id"]}/objection"' in page.text

    clock.advance(1 * DAY)
    token = await signed_in(client, rt, owner)  # a new session: the first one idled out
    page = await client.get(PAGE)
    assert made["id"] in section(page, "current")
    assert "/objection" not in page.text
    before = await counts(rt)
    closed = await client.post(f"{PAGE}/{made['id']}/objection",
                               data={"_csrf": token, "reason": REASON})
    assert closed.status_code == 400
    assert (top_error(closed) or "").startswith("The time to object ended at 2026-02-02T00:00")
    # Its form is gone: a complaint about the reason goes to the top of the page.
    empty = await client.post(f"{PAGE}/{made['id']}/objection",
                              data={"_csrf": token, "reason": ""})
    assert top_error(empty) == "Your reason: this field is required."
    assert await counts(rt) == before


async def test_a_sub_account_reads_the_register_and_objections_are_the_top_account_s(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    sub_account = await make_tenant(rt, "Acme EU", parent=acme.id)
    made = await told(client, rt, clock, ops)
    token = await signed_in(client, rt, await person(rt, sub_account.id, "owner"))
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert 'id="sub-account"' in page.text
    assert "Objections are the top account's" in html.unescape(page.text)
    assert made["id"] in section(page, "upcoming")
    assert "/objection" not in page.text
    before = await counts(rt)
    refused = await client.post(f"{PAGE}/{made['id']}/objection",
                                data={"_csrf": token, "reason": REASON})
    assert refused.status_code == 400
    assert (top_error(refused) or "").startswith("Objections are the client's")
    assert await counts(rt) == before
    assert await objection_of(rt, sub_account.id) is None


# --------------------------------------------------------------------------- everyone


async def test_the_public_page_is_the_register_now_and_nothing_of_any_account(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    proposed = await record(client, ops, legal_name="Not Told Ltd")
    made = await told(client, rt, clock, ops, transfer_mechanism="sccs",
                      countries=["US", "IE"])
    objected = await client.post(f"/v1/subprocessors/{made['id']}/objection",
                                 headers=acme.headers, json={"reason": REASON})
    assert objected.status_code == 200
    client.cookies.clear()

    async def where() -> str:
        page = await client.get(PUBLIC)
        assert page.status_code == 200
        assert "Not Told Ltd" not in page.text
        assert proposed["id"] not in page.text
        for secret in (REASON, acme.id, "Acme", "objected"):
            assert secret not in html.unescape(page.text), secret
        return next(name for name in ("current", "upcoming", "former")
                    if made["id"] in section(page, name))

    page = await client.get(PUBLIC)
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert 'datetime="2026-01-01T00:00:00+00:00">2026-01-01 00:00 UTC' in page.text  # as of
    shown = card(page, made["id"])
    for expected in ("Northwind Carrier Ltd", "IE, US", "Carries SMS to mobile networks",
                     "user.contact.phone_number", "user.content.private",
                     "Standard contractual clauses (GDPR Art. 46(2)(c))",
                     "ISO 27001 certified", "Takes effect", "2026-01-31 00:00 UTC"):
        assert expected in shown, expected
    assert await where() == "upcoming"
    clock.advance(30 * DAY)
    assert await where() == "current"
    assert "In use since" in card(await client.get(PUBLIC), made["id"])
    assert (await client.post(f"{REGISTER}/{made['id']}/retire", headers=ops)).status_code \
        == 200
    assert await where() == "former"
    # A person signed in sees the same page: nothing of their account either.
    await signed_in(client, rt, await person(rt, acme.id, "owner"))
    page = await client.get(PUBLIC)
    assert REASON not in html.unescape(page.text)
    assert acme.id not in page.text
