"""The webhooks page: the URL and statuses saved through the API's own checks, the
recent deliveries, and Resend."""

from __future__ import annotations

import httpx

from tests.conftest import HookServer, Tenant, make_tenant, settle
from tests.portal.pages import field_error, signed_in
from tests.users.people import person
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime

SEND = {"to": "+12025550173", "from": "Acme", "body": "Hello", "channel": "sms"}


async def test_the_url_and_statuses_are_saved(client: httpx.AsyncClient, rt: Runtime,
                                              acme: Tenant, hooks: HookServer) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "developer"))
    saved = await client.post("/portal/webhooks", data={
        "_csrf": token, "webhook_url": hooks.url, "statuses": ["delivered", "failed"]})
    assert saved.status_code == 303
    account = (await client.get("/v1/account", headers=acme.headers)).json()
    assert account["webhook_url"] == hooks.url
    assert sorted(account["webhook_statuses"]) == ["delivered", "failed"]
    page = await client.get("/portal/webhooks?saved=1")
    assert "Saved." in page.text
    assert f'value="{hooks.url}"' in page.text


async def test_a_refused_url_is_shown_beside_its_field_and_nothing_changes(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "developer"))
    before = (await client.get("/v1/account", headers=acme.headers)).json()
    for url in ("http://169.254.169.254/latest", "not a url", "ftp://example.com/x",
                "http:///x", "https://example.com/" + "a" * 3000):
        refused = await client.post("/portal/webhooks", data={
            "_csrf": token, "webhook_url": url, "every_change": "1"})
        assert refused.status_code == 400, url
        assert field_error(refused, "webhook_url") or 'role="alert"' in refused.text
    none_ticked = await client.post("/portal/webhooks", data={
        "_csrf": token, "webhook_url": "https://example.com/hook"})
    assert none_ticked.status_code == 400
    assert (await client.get("/v1/account", headers=acme.headers)).json() == before


async def test_resend_from_the_page_posts_the_event_again(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    token = await signed_in(client, rt, await person(rt, acme.id, "developer"))
    sent = (await client.post("/v1/messages", headers=acme.headers, json=SEND)).json()
    await settle(rt, clock)
    await settle(rt, clock, seconds=10)
    page = await client.get("/portal/webhooks")
    assert sent["id"] in page.text
    assert "Resend" in page.text
    listed = (await client.get("/v1/webhook-deliveries", headers=acme.headers)).json()["data"]
    first = listed[-1]
    before = len(hooks.requests)
    again = await client.post(f"/portal/webhooks/deliveries/{first['id']}/resend",
                              data={"_csrf": token})
    assert again.status_code == 303
    assert again.headers["location"].startswith(f"/portal/messages/{sent['id']}#whd_")
    await settle(rt, clock)
    assert [r["headers"]["Tidings-Event-Id"] for r in hooks.requests[before:]] == [
        first["event_id"]]
    message_page = await client.get(f"/portal/messages/{sent['id']}")
    assert message_page.text.count('class="delivery"') == 4
