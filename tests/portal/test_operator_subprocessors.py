"""The console's sub-processor register (``/operator/subprocessors``): staff only; an
entry recorded and changed from forms whose garbage comes back beside each field with
nothing written; **Notify the clients** with its date (thirty days or more: the API's
``notice_too_short`` beside the field otherwise, nothing changed); each client's notice
with the proof it was sent, its objection and the objection's resolution; **Retire**;
ids that are none answer 404, a form without its token 403."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.api.test_operator_api import ops  # noqa: F401 (the operator-key fixture)
from tests.conftest import Tenant
from tests.portal.pages import field_error, page_error, signed_in
from tests.subprocessors.test_register import REASON, REGISTER, counts, notify, record
from tests.users.people import Person, person
from tidings.core.clock import FakeClock
from tidings.core.data_categories import PHONE, PRIVATE_CONTENT
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.subprocessors.models import SubprocessorNotice

PAGE = "/operator/subprocessors"
SUB_ID = re.compile(r"sub_[0-9a-z]{26}")
DEFAULT_EFFECTIVE = "2026-01-31T01:00"  # the fake clock's 2026-01-01 00:00, 30 days on


async def staff(rt: Runtime) -> Person:
    return await person(rt, None, "operator", email="ops@tidings.example")


def form(token: str, **changes: Any) -> dict[str, Any]:
    """A complete entry as the register's form sends it."""
    data: dict[str, Any] = {
        "_csrf": token, "legal_name": "Northwind Carrier Ltd", "countries": "GB, IE",
        "purpose": "Carries SMS to mobile networks in the United Kingdom and Ireland.",
        "data_categories": [PHONE, PRIVATE_CONTENT], "transfer_mechanism": "adequacy",
        "security_summary": "ISO 27001 certified; TLS on every link; access logged."}
    data.update(changes)
    return data


async def api_entry(client: httpx.AsyncClient, ops: dict[str, str],  # noqa: F811
                    sub_id: str) -> dict[str, Any]:
    shown = await client.get(f"{REGISTER}/{sub_id}", headers=ops)
    assert shown.status_code == 200, shown.text
    return dict(shown.json())


async def notice_rows(rt: Runtime) -> list[SubprocessorNotice]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return list((await session.scalars(select(SubprocessorNotice))).all())


def top_error(page: httpx.Response) -> str | None:
    """The form's message that belongs to no field, at the top of the page."""
    found = re.search(r'<p class="error" role="alert">([^<]*)</p>', page.text)
    return html.unescape(found.group(1)) if found else None


def row(page: httpx.Response, row_id: str) -> str:
    found = re.search(rf'<tr id="{re.escape(row_id)}">(.*?)</tr>', page.text, re.S)
    assert found, page.text[-3000:]
    return html.unescape(found.group(1))


async def test_only_staff_open_the_register_and_it_shows_each_entry(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops)
    token = await signed_in(client, rt, await person(rt, acme.id, "owner"))
    for path in (PAGE, f"{PAGE}/{made['id']}"):
        refused = await client.get(path)
        assert (refused.status_code, page_error(refused)) == (403, "not_operator_staff")
    before = await counts(rt)
    refused = await client.post(PAGE, data=form(token))
    assert (refused.status_code, page_error(refused)) == (403, "not_operator_staff")
    assert await counts(rt) == before

    client.cookies.clear()
    await signed_in(client, rt, await staff(rt))
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert 'href="/operator/subprocessors" aria-current="page"' in page.text  # the menu
    shown = row(page, f"sub-{made['id']}")
    for expected in ("Northwind Carrier Ltd", "GB, IE", "proposed: no client told",
                     'data-count="notices">0<', 'data-count="objections_open">0<'):
        assert expected in shown, expected


async def test_recording_an_entry_leads_to_its_page(
        client: httpx.AsyncClient, rt: Runtime, ops: dict[str, str]) -> None:  # noqa: F811
    token = await signed_in(client, rt, await staff(rt))
    empty = await client.get(PAGE)
    assert "No sub-processors recorded." in empty.text
    made = await client.post(PAGE, data=form(
        token, countries="ie, gb GB", purpose="Carries SMS.\r\nTo every network."))
    assert made.status_code == 303, made.text[-2000:]
    location = made.headers["location"]
    assert re.fullmatch(r"/operator/subprocessors/sub_[0-9a-z]{26}", location)
    sub_id = location.rsplit("/", 1)[-1]
    stored = await api_entry(client, ops, sub_id)
    assert (stored["countries"], stored["data_categories"], stored["status"]) == (
        ["GB", "IE"], [PHONE, PRIVATE_CONTENT], "proposed")
    assert stored["purpose"] == "Carries SMS.\nTo every network."  # the browser's CRLF
    assert stored["created_by"].startswith("operator:")

    page = await client.get(location)
    assert page.status_code == 200
    text = html.unescape(page.text)
    for shown in ("Northwind Carrier Ltd", "GB, IE", PHONE, PRIVATE_CONTENT,
                  "An adequacy decision (GDPR Art. 45)", "ISO 27001 certified",
                  "proposed: no client told", "No client told yet.", "Notify the clients"):
        assert shown in text, shown
    # The date proposed: thirty days on, to a whole hour, with time to send the form.
    assert f'name="effective_at" type="datetime-local" value="{DEFAULT_EFFECTIVE}"' \
        in page.text


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"legal_name": ""}, "legal_name", "Legal name: this field is required."),
    ({"legal_name": "x" * 201}, "legal_name", "Legal name is too long: at most 200"),
    ({"legal_name": "Northwind\nCarrier"}, "legal_name", "Legal name: one line."),
    ({"purpose": "line\x00break"}, "purpose", "Purpose holds characters that cannot"),
    ({"purpose": "x" * 501}, "purpose", "Purpose is too long: at most 500"),
    ({"security_summary": "   "}, "security_summary",
     "Security measures: this field is required."),
    ({"security_summary": "x" * 2001}, "security_summary", "Security measures is too long"),
    ({"countries": ""}, "countries", "Countries: this field is required."),
    ({"countries": "XX, GB"}, "countries", "Not ISO 3166-1 country codes: XX."),
    ({"countries": "GB, G1"}, "countries", "Countries: two-letter ISO 3166-1 codes"),
    ({"countries": "GBR"}, "countries", "Countries: two-letter ISO 3166-1 codes"),
    ({"countries": ",".join(["GB"] * 31)}, "countries", "Countries: at most 30."),
    ({"countries": "GB, " * 40}, "countries", "Countries is too long"),
    ({"countries": "G\x07B"}, "countries", "Countries holds characters"),
    ({"data_categories": []}, "data_categories",
     "Personal data: choose at least one category."),
    ({"data_categories": ["user.favourite_colour"]}, "data_categories",
     "Choose among the listed categories."),
    ({"data_categories": [PHONE, "system.operations"]}, "data_categories",
     "Choose among the listed categories."),
    ({"transfer_mechanism": "trust_us"}, "transfer_mechanism",
     "Choose one of the listed safeguards."),
    ({"transfer_mechanism": ""}, "transfer_mechanism", "Choose one of the listed safeguards."),
])
async def test_garbage_in_the_form_comes_back_beside_its_field(
        client: httpx.AsyncClient, rt: Runtime, changes: dict[str, Any], field: str,
        message: str) -> None:
    token = await signed_in(client, rt, await staff(rt))
    before = await counts(rt)
    page = await client.post(PAGE, data=form(token, **changes))
    assert page.status_code == 400
    shown = field_error(page, field)
    assert shown is not None, page.text[-3000:]
    assert html.unescape(shown).startswith(message), shown
    assert await counts(rt) == before
    assert "Record a sub-processor" in page.text  # the form again, filled in
    if field != "legal_name":
        assert 'value="Northwind Carrier Ltd"' in page.text


async def test_a_form_without_its_token_changes_nothing(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops)
    await signed_in(client, rt, await staff(rt))
    before = await counts(rt)
    location = f"{PAGE}/{made['id']}"
    for path, data in ((PAGE, form("")), (location, form("")),
                       (f"{location}/notify", {"effective_at": DEFAULT_EFFECTIVE}),
                       (f"{location}/retire", {"confirm": "yes"}),
                       (f"{location}/objections/{acme.id}/resolution",
                        {"outcome": "upheld", "note": "n"})):
        for token in ("", "x" * 43):
            refused = await client.post(path, data={**data, "_csrf": token})
            assert (refused.status_code, page_error(refused)) == (403, "csrf_failed"), path
    assert await counts(rt) == before
    assert (await api_entry(client, ops, made["id"]))["status"] == "proposed"


async def test_notify_checks_the_date_then_every_client_is_told_with_proof(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant, ops: dict[str, str]) -> None:  # noqa: F811
    await person(rt, acme.id, "owner", email="owner@acme.example")  # globex has none
    made = await record(client, ops)
    token = await signed_in(client, rt, await staff(rt))
    location = f"{PAGE}/{made['id']}"
    before = await counts(rt)
    short = await client.post(f"{location}/notify", data={
        "_csrf": token, "effective_at": "2026-01-30T23:59"})
    assert short.status_code == 400
    shown = field_error(short, "effective_at")
    assert shown is not None
    assert shown.startswith(
        "effective_at must be at least 30 days after the notice, so not before "
        "2026-01-31T00:00:00+00:00"), shown
    assert 'value="2026-01-30T23:59"' in short.text  # the date sent, to correct
    for garbage, message in (("", "Takes effect: this field is required."),
                             ("next month", "Enter a time as YYYY-MM-DD HH:MM (UTC)."),
                             ("2026-02-30T00:00", "Enter a time as"),
                             ("2026-03-01T00:00+05:00", "Enter a time as"),
                             ("2026-03-01T00:00\x00", "Enter a time as"),
                             ("9" * 5000, "Enter a time as")):
        refused = await client.post(f"{location}/notify", data={
            "_csrf": token, "effective_at": garbage})
        assert refused.status_code == 400, garbage
        assert (field_error(refused, "effective_at") or "").startswith(message), garbage
    assert await counts(rt) == before
    assert (await api_entry(client, ops, made["id"]))["status"] == "proposed"

    told = await client.post(f"{location}/notify", data={
        "_csrf": token, "effective_at": DEFAULT_EFFECTIVE})
    assert told.status_code == 303, told.text[-2000:]
    assert told.headers["location"] == f"{location}#notices"
    await rt.worker_pool().drain()
    by_tenant = {n.tenant_id: n for n in await notice_rows(rt)}
    assert set(by_tenant) == {acme.id, globex.id}
    page = await client.get(location)
    assert "notified: the thirty days run" in page.text
    assert "2026-01-31 01:00 UTC" in page.text
    assert '<dd id="told">2 (the notice went out 2026-01-01 00:00 UTC)</dd>' in page.text
    [mail_id] = by_tenant[acme.id].mail_ids
    assert f"<code>{mail_id}</code>" in row(page, f"notice-{acme.id}")
    assert "not sent: no_active_owner" in re.sub(r"<[^>]+>", "", row(page,
                                                                      f"notice-{globex.id}"))
    assert 'id="notify"' not in page.text  # told once: neither notify nor change
    assert 'id="change"' not in page.text
    register = await client.get(PAGE)
    assert 'data-count="notices">2<' in row(register, f"sub-{made['id']}")

    # Told once: a second notice is refused, at the top of the page.
    before = await counts(rt)
    again = await client.post(f"{location}/notify", data={
        "_csrf": token, "effective_at": "2026-03-01T00:00"})
    assert again.status_code == 400
    assert "clients are told once" in (top_error(again) or "")
    assert await counts(rt) == before


async def test_an_objection_is_resolved_from_its_row(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops)
    await notify(client, ops, clock, made["id"])
    await rt.worker_pool().drain()
    objected = await client.post(f"/v1/subprocessors/{made['id']}/objection",
                                 headers=acme.headers, json={"reason": REASON})
    assert objected.status_code == 200, objected.text
    token = await signed_in(client, rt, await staff(rt))
    location = f"{PAGE}/{made['id']}"
    page = await client.get(location)
    assert REASON in row(page, f"notice-{acme.id}")
    assert "1 open of 1" in page.text
    url = f"{location}/objections/{acme.id}/resolution"
    for data, field, message in (
            ({"outcome": "maybe", "note": "n"}, f"outcome-{acme.id}",
             "Choose one of the listed outcomes."),
            ({"outcome": "upheld", "note": ""}, f"note-{acme.id}",
             "Note: this field is required."),
            ({"outcome": "upheld", "note": "x" * 1001}, f"note-{acme.id}",
             "Note is too long: at most 1000"),
            ({"outcome": "upheld", "note": "a\x07b"}, f"note-{acme.id}",
             "Note holds characters")):
        refused = await client.post(url, data={"_csrf": token, **data})
        assert refused.status_code == 400, data
        assert (field_error(refused, field) or "").startswith(message), data
    # An account that did not object: the API's refusal, at the top; garbage for it too.
    nobody = await client.post(f"{location}/objections/acc_nobody/resolution",
                               data={"_csrf": token, "outcome": "upheld", "note": "n"})
    assert nobody.status_code == 400
    assert top_error(nobody) == f"acc_nobody has not objected to {made['id']}."
    garbage = await client.post(f"{location}/objections/acc_nobody/resolution",
                                data={"_csrf": token, "outcome": "maybe", "note": "n"})
    assert top_error(garbage) == "Choose one of the listed outcomes."
    [notice] = await notice_rows(rt)
    assert notice.resolution is None

    resolved = await client.post(url, data={
        "_csrf": token, "outcome": "upheld",
        "note": "Acme's traffic stays on our own SMSC."})
    assert resolved.status_code == 303, resolved.text[-2000:]
    page = await client.get(location)
    shown = row(page, f"notice-{acme.id}")
    assert "upheld: the client stays off it" in shown
    assert "Acme's traffic stays on our own SMSC." in shown
    assert f'action="{url}"' not in page.text
    assert "0 open of 1" in page.text
    again = await client.post(url, data={"_csrf": token, "outcome": "withdrawn",
                                         "note": "n"})
    assert (again.status_code, top_error(again)) == (400, "This objection is resolved "
                                                          "already.")
    [notice] = await notice_rows(rt)
    assert notice.resolution == "upheld"


async def test_an_entry_changes_while_proposed_and_not_once_told(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops)
    token = await signed_in(client, rt, await staff(rt))
    location = f"{PAGE}/{made['id']}"
    page = await client.get(location)
    assert 'name="countries" value="GB, IE"' in page.text  # the form starts from the entry
    refused = await client.post(location, data=form(token, countries="XX"))
    assert refused.status_code == 400
    assert field_error(refused, "countries") == "Not ISO 3166-1 country codes: XX."
    assert (await api_entry(client, ops, made["id"]))["countries"] == ["GB", "IE"]
    changed = await client.post(location, data=form(token, countries="DE"))
    assert changed.status_code == 303
    assert changed.headers["location"] == f"{location}?changed=1"
    page = await client.get(changed.headers["location"])
    assert "The entry is changed." in page.text
    assert (await api_entry(client, ops, made["id"]))["countries"] == ["DE"]

    await notify(client, ops, clock, made["id"])
    page = await client.get(location)
    assert f'action="{location}"' not in page.text
    late = await client.post(location, data=form(token, countries="US"))
    assert late.status_code == 400
    assert "cannot change" in (top_error(late) or "")
    assert (await api_entry(client, ops, made["id"]))["countries"] == ["DE"]


async def test_retiring_asks_to_confirm_and_happens_once(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops)
    await notify(client, ops, clock, made["id"])
    token = await signed_in(client, rt, await staff(rt))
    location = f"{PAGE}/{made['id']}"
    for confirm in ("", "no", "yes" * 100):
        unconfirmed = await client.post(f"{location}/retire",
                                        data={"_csrf": token, "confirm": confirm})
        assert unconfirmed.status_code == 400
        assert (field_error(unconfirmed, "confirm") or "").startswith("Tick the box")
    assert (await api_entry(client, ops, made["id"]))["status"] == "notified"
    retired = await client.post(f"{location}/retire", data={"_csrf": token, "confirm": "yes"})
    assert retired.status_code == 303
    page = await client.get(location)
    assert '<span class="status retired" id="status">retired</span>' in page.text
    assert 'id="retire"' not in page.text
    again = await client.post(f"{location}/retire", data={"_csrf": token, "confirm": "yes"})
    assert (again.status_code, top_error(again)) == (400, f"{made['id']} is retired already.")


async def test_ids_that_are_none_answer_404_and_change_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await record(client, ops)
    token = await signed_in(client, rt, await staff(rt))
    before = await counts(rt)
    for missing in ("sub_missing", "x" * 500):
        location = f"{PAGE}/{missing}"
        assert page_error(await client.get(location)) == "subprocessor_not_found"
        for path, data in ((location, form(token)),
                           (f"{location}/notify", {"effective_at": "2026-03-01T00:00"}),
                           (f"{location}/notify", {"effective_at": "2026-01-02T00:00"}),
                           (f"{location}/retire", {"confirm": "yes"}),
                           (f"{location}/retire", {}),
                           (f"{location}/objections/{acme.id}/resolution",
                            {"outcome": "upheld", "note": "n"})):
            answer = await client.post(path, data={**data, "_csrf": token})
            assert (answer.status_code, page_error(answer)) == (
                404, "subprocessor_not_found"), (path, data)
    assert await counts(rt) == before
    assert (await api_entry(client, ops, made["id"]))["status"] == "proposed"
