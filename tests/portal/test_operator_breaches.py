"""The console's breach register (``/operator/breaches``): staff only; the clock of each
breach (due in, escalated, overdue); recording one and its next version through forms
whose garbage comes back beside each field with nothing written; a breach's impact,
**Notify** (refused by name while a field is missing) and its notices; **Close**."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.api.test_operator_api import ops  # noqa: F401 (the operator-key fixture)
from tests.breaches.test_register import BREACHES, complete, times
from tests.conftest import Tenant
from tests.portal.pages import field_error, page_error, signed_in
from tests.users.people import Person, person
from tidings.breaches.models import Breach, BreachVersion
from tidings.breaches.tasks import watch_clocks
from tidings.core.clock import FakeClock
from tidings.core.data_categories import EMAIL, PHONE, PRIVATE_CONTENT
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

PAGE = "/operator/breaches"


async def staff(rt: Runtime) -> Person:
    return await person(rt, None, "operator", email="ops@tidings.example")


async def stored(rt: Runtime) -> tuple[int, int]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return (int(await session.scalar(select(func.count()).select_from(Breach)) or 0),
                int(await session.scalar(select(func.count()).select_from(BreachVersion))
                    or 0))


def form(token: str, acme_id: str, **changes: Any) -> dict[str, Any]:
    """A complete breach as the register's form sends it."""
    data: dict[str, Any] = {
        "_csrf": token, "detected_at": "2025-12-31T20:00", "aware_at": "2025-12-31T22:00",
        "nature": "confidentiality", "nature_description": "A backup was readable.",
        "categories_of_subjects": "message recipients\nsenders of inbound messages",
        "approx_subjects": "100-500", "approx_subjects_reason": "",
        "categories_of_records": [PHONE, PRIVATE_CONTENT], "approx_records": "1200",
        "likely_consequences": "Unsolicited messages.", "measures_taken": "Access removed.",
        "contact": "dpo@tidings.example", "scope_tenants": acme_id,
        "window_start": "2025-12-20T00:00", "window_end": "2025-12-30T00:00",
        "scope_categories": [PHONE]}
    data.update(changes)
    return data


async def test_only_staff_see_the_register_and_its_clocks(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = (await client.post(BREACHES, headers=ops, json=times(clock))).json()
    await signed_in(client, rt, await person(rt, acme.id, "owner"))
    refused = await client.get(PAGE)
    assert refused.status_code == 403
    assert page_error(refused) == "not_operator_staff"
    assert (await client.get(f"{PAGE}/{made['id']}")).status_code == 403
    member = await staff(rt)

    async def clock_shown() -> str:
        """The breach's clock on the register (signed in afresh: sessions idle out)."""
        client.cookies.clear()
        await signed_in(client, rt, member)
        page = await client.get(PAGE)
        assert page.status_code == 200
        found = re.search(rf'data-clock="{made["id"]}">(.*?)</td>', page.text)
        assert found, page.text
        return re.sub(r"<[^>]+>", "", found.group(1)).strip()

    assert await clock_shown() == "due in 48 h 00 min"
    page = await client.get(PAGE)
    assert 'href="/operator/breaches"' in page.text  # in the console's menu
    assert f'<tr id="breach-{made["id"]}">' in page.text
    clock.advance(36 * 3600)
    await watch_clocks(rt)
    assert await clock_shown() == "due in 12 h 00 min escalated"
    clock.advance(12 * 3600 - 60)
    assert await clock_shown() == "due in 0 h 01 min escalated"
    clock.advance(60)
    assert await clock_shown() == "overdue by 0 h 00 min escalated"
    page = await client.get(PAGE)
    assert f'<tr id="breach-{made["id"]}" class="overdue">' in page.text


async def test_recording_a_breach_and_its_page(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    token = await signed_in(client, rt, await staff(rt))
    await person(rt, acme.id, "owner", email="owner@acme.example")
    made = await client.post(PAGE, data=form(token, acme.id))
    assert made.status_code == 303, made.text
    location = made.headers["location"]
    assert re.fullmatch(r"/operator/breaches/brc_[0-9a-z]{26}", location)
    page = await client.get(location)
    assert page.status_code == 200
    for shown in ("A backup was readable.", "100-500", PHONE, "dpo@tidings.example",
                  "message recipients, senders of inbound messages", acme.id,
                  "Notify the clients"):
        assert shown in page.text, shown
    assert 'id="missing"' not in page.text
    impact = await client.get(location, params={"impact": "1"})
    assert f'data-account="{acme.id}"' in impact.text
    assert 'data-total="records">0<' in impact.text
    notified = await client.post(f"{location}/notify", data={"_csrf": token})
    assert notified.status_code == 303
    page = await client.get(location)
    assert "No client notified yet." not in page.text
    assert re.search(r"<code>mail_[0-9a-z]{26}</code>", page.text)
    assert "Notify the clients" not in page.text  # this version is notified


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"detected_at": ""}, "detected_at", "Detected: this field is required."),
    ({"aware_at": "soon"}, "aware_at", "Enter a time as YYYY-MM-DD HH:MM (UTC)."),
    ({"aware_at": "2025-12-31T19:00"}, "aware_at", "aware_at is before detected_at"),
    ({"aware_at": "2026-01-02T00:00"}, "aware_at", "aware_at is in the future."),
    ({"nature": "leak"}, "nature", "Choose one of the listed natures."),
    ({"nature_description": "x" * 2001}, "nature_description", "Description is too long"),
    ({"contact": "a\x07b"}, "contact", "Contact point holds characters"),
    ({"approx_subjects": "lots"}, "approx_subjects", "approx_subjects must be a number"),
    ({"approx_records": "unknown"}, "approx_records", "approx_records must be a number"),
    ({"categories_of_records": ["user.bogus"]}, "categories_of_records",
     "Choose among the listed categories."),
    ({"scope_categories": [EMAIL, "system.operations"]}, "scope_categories",
     "Choose among the listed categories."),
    ({"categories_of_subjects": "\n".join(f"kind {n}" for n in range(21))},
     "categories_of_subjects", "Categories of people: at most 20."),
    ({"scope_tenants": "acc_nobody"}, "scope_tenants", "There is no account"),
    ({"window_end": "2025-12-01T00:00"}, "window_end", "The scope's window ends before"),
    ({"window_start": "2025-13-45T99:99"}, "window_start", "Enter a time as"),
])
async def test_garbage_in_the_form_comes_back_beside_its_field(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        changes: dict[str, Any], field: str, message: str) -> None:
    token = await signed_in(client, rt, await staff(rt))
    page = await client.post(PAGE, data=form(token, acme.id, **changes))
    assert page.status_code == 400
    shown = field_error(page, field)
    assert shown is not None, page.text[-3000:]
    assert html.unescape(shown).startswith(message), shown
    assert await stored(rt) == (0, 0)
    assert "Record a breach" in page.text  # the form again, filled in


async def test_notify_is_refused_by_name_then_a_version_completes_it_and_close(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    body = complete([acme.id])
    body.pop("contact")
    body.pop("measures_taken")
    made = (await client.post(BREACHES, headers=ops, json={**times(clock), **body})).json()
    token = await signed_in(client, rt, await staff(rt))
    location = f"{PAGE}/{made['id']}"
    refused = await client.post(f"{location}/notify", data={"_csrf": token})
    assert refused.status_code == 400
    assert "measures_taken, contact" in refused.text
    assert field_error(refused, "contact") == "Needed before notifying."
    assert field_error(refused, "measures_taken") == "Needed before notifying."
    assert (await client.get(BREACHES, headers=ops)).json()[0]["status"] == "open"
    # The version form starts from the current version: only the missing fields to add.
    page = await client.get(location)
    data = form(token, acme.id, contact="dpo@tidings.example",
                measures_taken="Access removed.")
    for name in ("detected_at", "aware_at"):
        data.pop(name)
    garbage = await client.post(f"{location}/versions", data={**data, "approx_records": "-"})
    assert garbage.status_code == 400
    assert field_error(garbage, "approx_records") is not None
    assert await stored(rt) == (1, 1)
    added = await client.post(f"{location}/versions", data=data)
    assert added.status_code == 303, added.text
    page = await client.get(location)
    assert 'id="version-2"' in page.text
    assert 'id="version-1"' in page.text
    assert "Notify the clients" in page.text
    assert (await client.post(f"{location}/notify", data={"_csrf": token})).status_code == 303
    no_reason = await client.post(f"{location}/close", data={"_csrf": token, "reason": " "})
    assert no_reason.status_code == 400
    assert field_error(no_reason, "reason") == "Reason: this field is required."
    closed = await client.post(f"{location}/close", data={"_csrf": token,
                                                          "reason": "Handled with the clients."})
    assert closed.status_code == 303
    page = await client.get(location)
    assert "Handled with the clients." in page.text
    assert 'action="/operator/breaches/' + made["id"] + '/versions"' not in page.text
    assert (await client.get(f"{PAGE}/brc_nothing")).status_code == 404
    assert (await client.post(f"{PAGE}/brc_nothing/notify",
                              data={"_csrf": token})).status_code == 404
