"""The numbers page: a claim proved by the code the platform sends, an inbound webhook
URL per number, releasing; wrong codes and garbage change nothing."""

from __future__ import annotations

import re

import httpx

from tests.conftest import Tenant, codes_sent
from tests.portal.pages import field_error, signed_in
from tests.users.people import person
from tidings.runtime import Runtime

NUMBER = "+12025550142"


async def owned(client: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, object]]:
    return list((await client.get("/v1/numbers", headers=tenant.headers)).json())


async def test_a_number_is_claimed_with_its_code_given_a_url_and_released(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "developer"))
    started = await client.post("/portal/numbers/claims", data={"_csrf": token,
                                                                "number": NUMBER})
    assert started.status_code == 200
    action = re.search(r'action="(/portal/numbers/claims/[^"]+/verify)"', started.text)
    assert action, started.text[:400]
    wrong = await client.post(action.group(1), data={"_csrf": token, "code": "000000",
                                                     "number": NUMBER})
    assert wrong.status_code == 400
    assert field_error(wrong, "code")
    assert await owned(client, acme) == []
    [code] = await codes_sent(rt, NUMBER)
    done = await client.post(action.group(1), data={"_csrf": token, "code": code,
                                                    "number": NUMBER})
    assert done.status_code == 303
    [number] = await owned(client, acme)
    assert number["number"] == NUMBER
    url = await client.post(f"/portal/numbers/{number['id']}/webhook", data={
        "_csrf": token, "webhook_url": "https://hooks.example.com/inbound"})
    assert url.status_code == 303
    assert (await owned(client, acme))[0]["webhook_url"] == "https://hooks.example.com/inbound"
    refused = await client.post(f"/portal/numbers/{number['id']}/webhook", data={
        "_csrf": token, "webhook_url": "http://169.254.169.254/"})
    assert refused.status_code == 400
    assert field_error(refused, "webhook_url")
    released = await client.post(f"/portal/numbers/{number['id']}/release",
                                 data={"_csrf": token})
    assert released.status_code == 303
    assert await owned(client, acme) == []


async def test_garbage_claims_are_refused_beside_the_field(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    token = await signed_in(client, rt, await person(rt, acme.id, "developer"))
    for raw in ("", "not a number", "+1" + "9" * 40, "x" * 400):
        answer = await client.post("/portal/numbers/claims", data={"_csrf": token,
                                                                   "number": raw})
        assert answer.status_code == 400, raw
        assert field_error(answer, "number"), raw
    foreign = await client.post("/portal/numbers/num_nothing/release", data={"_csrf": token})
    assert foreign.status_code == 404
