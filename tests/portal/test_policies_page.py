"""The client's Policies page (``/portal/policies``): the versions the account was told
of with where it stands, one version's text, an objection written in the form (garbage
beside the field, nothing written), an acceptance, the window closing at the deadline;
another account's version not found; in the menu for those with privacy:manage only.
And the public pages (``/legal``): the version in force and the one announced, as time
passes; the one-line notice on the log-in page while a version is announced."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from tests.api.test_operator_api import ops  # noqa: F401 (the operator-key fixture)
from tests.conftest import Tenant, make_tenant
from tests.policies.test_policies import notice_rows, notify, publish, stored
from tests.portal.pages import field_error, page_error, signed_in
from tests.users.people import person
from tidings.core.clock import FakeClock
from tidings.portal.security import CONTENT_SECURITY_POLICY
from tidings.runtime import Runtime

PAGE = "/portal/policies"
DAY = 86400.0


async def compliance(client: httpx.AsyncClient, rt: Runtime, tenant: Tenant) -> str:
    return await signed_in(client, rt, await person(rt, tenant.id, "compliance"))


def text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def state_shown(page: httpx.Response, version_id: str) -> str:
    found = re.search(rf'data-state="{version_id}">(.*?)</td>', page.text, re.S)
    assert found, page.text[-2000:]
    return text_of(found.group(1))


async def test_a_client_reads_a_new_version_and_objects(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await publish(client, ops)
    await notify(rt)
    token = await compliance(client, rt, acme)
    listed = await client.get(PAGE)
    assert listed.status_code == 200
    assert 'href="/portal/policies"' in listed.text  # in the menu
    assert f'href="/portal/policies/{made["id"]}"' in listed.text
    assert state_shown(listed, made["id"]) == "pending: you may object"
    page = await client.get(f"{PAGE}/{made['id']}")
    assert page.status_code == 200
    for shown in ("Message bodies are kept 60 days instead of 90.",
                  "We keep message bodies for 60 days", "2026-02-01 00:00 UTC",
                  made["sha256"], "/legal/privacy_policy/2026-02"):
        assert shown in html.unescape(page.text), shown
    assert "Accept this version" in page.text
    objected = await client.post(f"{PAGE}/{made['id']}/objection", data={
        "_csrf": token, "reason": "Our contract with our customers says 90 days."})
    assert objected.status_code == 303, objected.text[:500]
    assert objected.headers["location"] == f"{PAGE}/{made['id']}?answered=1"
    page = await client.get(objected.headers["location"])
    assert "Your answer is recorded." in page.text
    assert "Our contract with our customers says 90 days." in page.text
    assert 'action="/portal/policies/' + made["id"] + '/objection"' not in page.text
    api = (await client.get(f"/v1/policies/{made['id']}", headers=acme.headers)).json()
    assert (api["state"], api["answered_by"].startswith("user:")) == ("objected", True)
    assert state_shown(await client.get(PAGE), made["id"]) == "objected"


async def test_an_acceptance_and_the_deadline(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant, ops: dict[str, str]) -> None:  # noqa: F811
    made = await publish(client, ops)
    await notify(rt)
    token = await compliance(client, rt, acme)
    accepted = await client.post(f"{PAGE}/{made['id']}/acceptance", data={"_csrf": token})
    assert accepted.status_code == 303
    assert state_shown(await client.get(PAGE), made["id"]) == "accepted"
    again = await client.post(f"{PAGE}/{made['id']}/acceptance", data={"_csrf": token})
    assert again.status_code == 400
    assert "accepted this version already" in again.text
    # Globex says nothing; a second past the deadline silence has accepted.
    clock.advance(31 * DAY + 1)
    client.cookies.clear()
    token = await compliance(client, rt, globex)
    assert state_shown(await client.get(PAGE), made["id"]) == \
        "accepted: no objection by the deadline"
    page = await client.get(f"{PAGE}/{made['id']}")
    assert 'name="reason"' not in page.text
    before = await stored(rt)
    late = await client.post(f"{PAGE}/{made['id']}/objection",
                             data={"_csrf": token, "reason": "Too late?"})
    assert late.status_code == 400
    assert "silence since then is acceptance" in html.unescape(late.text)
    assert await stored(rt) == before


@pytest.mark.parametrize(("reason", "message"), [
    ("", "Your reason: this field is required."),
    ("   \n ", "Your reason: this field is required."),
    ("x" * 2001, "Your reason is too long: at most 2000 characters."),
    ("bell\x07", "Your reason holds characters that cannot be typed."),
])
async def test_garbage_in_the_objection_comes_back_beside_the_field(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, ops: dict[str, str],  # noqa: F811
        reason: str, message: str) -> None:
    made = await publish(client, ops)
    await notify(rt)
    token = await compliance(client, rt, acme)
    before = await stored(rt)
    page = await client.post(f"{PAGE}/{made['id']}/objection",
                             data={"_csrf": token, "reason": reason})
    assert page.status_code == 400
    assert html.unescape(field_error(page, "reason") or "") == message
    assert await stored(rt) == before
    assert (await notice_rows(rt))[acme.id].answer is None


async def test_another_accounts_version_and_garbage_ids_are_not_found(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    made = await publish(client, ops)
    await notify(rt)
    clock.advance(1)
    late = await make_tenant(rt, "Latecomer")  # opened after publication: not told
    token = await compliance(client, rt, late)
    assert "No policy changes have been notified" in (await client.get(PAGE)).text
    before = await stored(rt)
    for path, data in ((f"{PAGE}/{made['id']}", None),
                       (f"{PAGE}/{made['id']}/objection", {"reason": "No."}),
                       (f"{PAGE}/{made['id']}/acceptance", {}),
                       (f"{PAGE}/pol_nothing", None), (f"{PAGE}/{'x' * 300}", None)):
        if data is None:
            answer = await client.get(path)
        else:
            answer = await client.post(path, data={"_csrf": token, **data})
        assert answer.status_code == 404, path
        assert page_error(answer) == "policy_not_found"
    assert await stored(rt) == before


async def test_only_those_with_privacy_manage_see_the_page_and_its_menu_entry(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    await signed_in(client, rt, await person(rt, acme.id, "developer"))
    assert 'href="/portal/policies"' not in (await client.get("/portal/keys")).text
    refused = await client.get(PAGE)
    assert (refused.status_code, page_error(refused)) == (403, "permission_denied")


# --------------------------------------------------------------------------- /legal


def notices_shown(page: httpx.Response) -> list[str]:
    return [text_of(p) for p in re.findall(r'<p class="notice"[^>]*>(.*?)</p>', page.text,
                                           re.S)]


async def test_the_public_page_shows_the_version_in_force_and_the_one_announced(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
        ops: dict[str, str]) -> None:  # noqa: F811
    nothing = await client.get("/legal/privacy_policy")
    assert (nothing.status_code, page_error(nothing)) == (404, "policy_not_found")
    first = await publish(client, ops, version="2026-02", text="The first text.")
    # Announced, nothing in force yet: no log-in needed.
    page = await client.get("/legal/privacy_policy")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "No version is in force yet." in page.text
    assert notices_shown(page) == [
        "A new version takes effect on 2026-02-01 00:00 UTC: Privacy Policy, version 2026-02."]
    assert 'href="/legal/privacy_policy/2026-02"' in page.text
    clock.advance(32 * DAY)  # 2 February: the first is in force
    second = await publish(client, ops, version="2026-03", text="The second text.",
                           summary="Shorter retention.")
    page = await client.get("/legal/privacy_policy")
    assert "The first text." in page.text
    assert "The second text." not in page.text
    assert notices_shown(page) == [
        "A new version takes effect on 2026-03-04 00:00 UTC: Privacy Policy, version 2026-03."]
    one = await client.get("/legal/privacy_policy/2026-03")
    assert one.status_code == 200
    for shown in ("The second text.", "Shorter retention.", "upcoming", second["sha256"]):
        assert shown in one.text, shown
    clock.advance(32 * DAY)  # the second in force, the first superseded
    page = await client.get("/legal/privacy_policy")
    assert ("The second text." in page.text, "The first text." in page.text) == (True, False)
    assert notices_shown(page) == []
    old = await client.get(f"/legal/privacy_policy/{first['version']}")
    assert "superseded" in old.text
    assert "The first text." in old.text
    for path in ("/legal/cookies", "/legal/privacy_policy/1999", "/legal/dpa",
                 f"/legal/terms/{first['version']}", "/legal/privacy_policy/" + "x" * 300):
        missing = await client.get(path)
        assert (missing.status_code, page_error(missing)) == (404, "policy_not_found"), path


async def test_the_login_page_says_a_version_is_announced(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock,
        ops: dict[str, str]) -> None:  # noqa: F811
    assert notices_shown(await client.get("/portal/login")) == []
    await publish(client, ops, kind="dpa", version="v2", title="Data Processing Agreement")
    page = await client.get("/portal/login")
    assert notices_shown(page) == [
        "Our Data Processing Agreement changes on 2026-02-01: read the new version."]
    assert 'href="/legal/dpa/v2"' in page.text
    clock.advance(31 * DAY)
    assert notices_shown(await client.get("/portal/login")) == []
