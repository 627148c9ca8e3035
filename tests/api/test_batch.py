"""POST /v1/messages/batch: one template, many recipients, per-recipient results."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import HookServer, Tenant, assert_problem, settle, stored_counts
from tidings.connectors.sandbox.carrier import SandboxCarrier
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime

BATCH = "/v1/messages/batch"
NUMBER = "+12025550173"
RECEIPT = 10



async def post_batch(client: httpx.AsyncClient, tenant: Tenant,
                     **fields: Any) -> httpx.Response:
    body = {"from": "Acme", "body": "Hi {name}", **fields}
    return await client.post(BATCH, headers=tenant.headers, json=body)


async def read(client: httpx.AsyncClient, tenant: Tenant, message_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/messages/{message_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result



def carrier(rt: Runtime) -> SandboxCarrier:
    connector = rt.connectors.all()[0]
    assert isinstance(connector, SandboxCarrier)
    return connector


async def test_each_recipient_gets_its_own_rendered_body(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    recipients = [
        {"to": "+12025550173", "variables": {"name": "Ada", "code": "1234"}},
        {"to": "+1 (202) 555-0174", "variables": {"name": "Grace", "code": "5678"}},
        {"to": "+12025550175", "variables": {"name": "Jürgen 😀", "code": "0000"}},
        {"to": "+12025550176", "variables": {"name": "{code}", "code": "42", "unused": "x"}},
    ]
    response = await post_batch(client, acme, body="Hi {name}, your code is {code}.",
                                recipients=recipients)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (4, 0)
    assert [r["index"] for r in result["results"]] == [0, 1, 2, 3]
    assert {r["status"] for r in result["results"]} == {"accepted"}
    assert all(r["error"] is None for r in result["results"])
    assert [r["to"] for r in result["results"]] == [
        "+12025550173", "+12025550174", "+12025550175", "+12025550176"]
    ids = [r["message_id"] for r in result["results"]]
    assert len(set(ids)) == 4

    messages = [await read(client, acme, i) for i in ids]
    assert [m["body"] for m in messages] == [
        "Hi Ada, your code is 1234.", "Hi Grace, your code is 5678.",
        "Hi Jürgen 😀, your code is 0000.",
        "Hi {code}, your code is 42."]  # a value is not itself a template
    assert [m["to"] for m in messages] == [r["to"] for r in result["results"]]
    assert [m["encoding"] for m in messages] == ["GSM-7", "GSM-7", "UCS-2", "GSM-7"]
    assert [r["num_segments"] for r in result["results"]] == [1, 1, 1, 1]
    assert {m["status"] for m in messages} == {"queued"}
    assert {m["from"] for m in messages} == {"Acme"}

    await settle(rt, clock)
    await settle(rt, clock, seconds=RECEIPT)
    assert {(await read(client, acme, i))["status"] for i in ids} == {"delivered"}
    assert (await carrier(rt).stats())["rows"] == 4


async def test_segments_are_counted_on_the_rendered_body(client: httpx.AsyncClient,
                                                        acme: Tenant) -> None:
    response = await post_batch(client, acme, body="{text}", recipients=[
        {"to": NUMBER, "variables": {"text": "a" * 160}},
        {"to": NUMBER, "variables": {"text": "a" * 161}},
        {"to": NUMBER, "variables": {"text": "😀" * 36}},
    ])
    assert response.status_code == 200, response.text
    assert [r["num_segments"] for r in response.json()["results"]] == [1, 2, 2]


async def test_invalid_recipients_are_rejected_one_by_one(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    recipients = [
        {"to": "+12025550173", "variables": {"name": "Ada"}},
        {"to": "12025550173", "variables": {"name": "No plus"}},
        {"to": "+12025550174", "variables": {}},
        {"to": "+12025550175", "variables": {"name": "x" * 1601}},
        {"to": "+1 202 555 0176", "variables": {"name": "Grace"}},
        {"to": "+1202555ABCD", "variables": {"name": "Letters"}},
        {"to": "+12025550177", "variables": {"name": ""}},
    ]
    response = await post_batch(client, acme, body="{name}", recipients=recipients)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (2, 5)
    by_index = {r["index"]: r for r in result["results"]}
    assert sorted(by_index) == list(range(7))
    assert [by_index[i]["status"] for i in range(7)] == [
        "accepted", "rejected", "rejected", "rejected", "accepted", "rejected", "rejected"]
    codes = {i: by_index[i]["error"]["code"] for i in (1, 2, 3, 5, 6)}
    assert codes == {1: "invalid_phone_number", 2: "template_variable_missing",
                     3: "body_too_long", 5: "invalid_phone_number", 6: "body_empty"}
    for i in (1, 2, 3, 5, 6):
        assert by_index[i]["message_id"] is None
        assert by_index[i]["error"]["detail"]
    for i in (0, 4):
        assert by_index[i]["error"] is None
    assert by_index[4]["to"] == "+12025550176"

    stored = await stored_counts(rt)
    assert stored["messages"] == 2
    assert stored["jobs"] == 2  # one dispatch job each, nothing for the rejected
    accepted_ids = sorted(by_index[i]["message_id"] for i in (0, 4))
    listed = await client.get("/v1/messages", headers=acme.headers)
    assert sorted(m["id"] for m in listed.json()["data"]) == accepted_ids

    await settle(rt, clock)
    await settle(rt, clock, seconds=RECEIPT)
    assert [(await read(client, acme, i))["body"] for i in
            (by_index[0]["message_id"], by_index[4]["message_id"])] == ["Ada", "Grace"]
    assert {(await read(client, acme, i))["status"] for i in accepted_ids} == {"delivered"}
    assert (await carrier(rt).stats())["rows"] == 2


async def test_a_batch_with_every_recipient_rejected_stores_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    before = await stored_counts(rt)
    response = await post_batch(client, acme, recipients=[{"to": "nope"}, {"to": NUMBER}])
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["rejected"]) == (0, 2)
    assert await stored_counts(rt) == before


async def test_batch_options_apply_to_every_message(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        hooks: HookServer) -> None:
    send_at = clock.now() + timedelta(minutes=30)
    response = await post_batch(client, acme, recipients=[
        {"to": NUMBER, "variables": {"name": "A"}},
        {"to": "+12025550174", "variables": {"name": "B"}}],
        send_at=send_at.isoformat(), validity_period=600, status_callback=hooks.url)
    assert response.status_code == 200, response.text
    ids = [r["message_id"] for r in response.json()["results"]]
    for message_id in ids:
        message = await read(client, acme, message_id)
        assert message["status"] == "scheduled"
        assert datetime.fromisoformat(message["send_at"]) == send_at
        assert datetime.fromisoformat(message["expires_at"]) == send_at + timedelta(minutes=10)
        assert message["status_callback"] == hooks.url

    await settle(rt, clock)
    assert (await carrier(rt).stats())["rows"] == 0
    await settle(rt, clock, seconds=1801)
    await settle(rt, clock, seconds=RECEIPT)
    for message_id in ids:
        assert (await read(client, acme, message_id))["status"] == "delivered"
    by_message: dict[str, list[str]] = {}
    for body in sorted(hooks.bodies(), key=lambda b: b["sequence"]):
        by_message.setdefault(body["data"]["message_id"], []).append(body["data"]["status"])
    assert by_message == {i: ["scheduled", "queued", "sent", "delivered"] for i in ids}


async def test_ten_thousand_recipients_are_accepted_and_one_more_is_refused(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    limit = rt.settings.batch_max_recipients
    assert limit == 10_000

    too_many = [{"to": NUMBER, "variables": {"n": str(i)}} for i in range(limit + 1)]
    response = await post_batch(client, acme, body="Number {n}", recipients=too_many)
    assert_problem(response, 400, "too_many_recipients")
    assert (await stored_counts(rt))["messages"] == 0
    assert (await stored_counts(rt))["jobs"] == 0

    response = await post_batch(client, acme, body="Number {n}", recipients=too_many[:limit])
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (limit, 0)
    assert [r["index"] for r in result["results"]] == list(range(limit))
    assert len({r["message_id"] for r in result["results"]}) == limit
    stored = await stored_counts(rt)
    assert stored["messages"] == limit
    assert stored["message_events"] == limit
    assert stored["jobs"] == limit
    last = await read(client, acme, result["results"][-1]["message_id"])
    assert last["body"] == f"Number {limit - 1}"


@pytest.mark.parametrize(("fields", "code"), [
    ({"from": "Acme Corporation Ltd"}, "invalid_sender_id"),
    ({"from": "Acme!"}, "invalid_sender_id"),
    ({"from": "+1202"}, "invalid_sender_id"),
    ({"channel": "pigeon"}, "channel_unavailable"),
    ({"channel": "whatsapp"}, "channel_unavailable"),
    ({"send_at": "2020-01-01T00:00:00Z"}, "send_at_in_past"),
    ({"send_at": "2026-03-01T00:00:00Z"}, "send_at_too_far"),
    ({"send_at": "2026-01-01T10:00:00"}, "validation_failed"),
    ({"status_callback": "ftp://example.com/hook"}, "validation_failed"),
    ({"validity_period": 0}, "validation_failed"),
    ({"recipients": []}, "validation_failed"),
    ({"recipients": [{"to": NUMBER, "variables": {"name": 5}}]}, "validation_failed"),
    ({"recipients": [{"to": NUMBER, "vars": {"name": "x"}}]}, "validation_failed"),
    ({"recipients": {"to": NUMBER}}, "validation_failed"),
    ({"recipients": [{"to": NUMBER, "variables": {f"v{i}": "x" for i in range(51)}}]},
     "validation_failed"),
    ({"body": ""}, "validation_failed"),
    ({"body": "x" * 1601}, "validation_failed"),
    ({"to": NUMBER}, "validation_failed"),  # single-message field: unknown here
    ({"priority": "high"}, "validation_failed"),
])
async def test_batch_level_errors_store_nothing(client: httpx.AsyncClient, rt: Runtime,
                                                acme: Tenant, fields: dict[str, Any],
                                                code: str) -> None:
    before = await stored_counts(rt)
    body = {"from": "Acme", "body": "Hi {name}",
            "recipients": [{"to": NUMBER, "variables": {"name": "Ada"}}], **fields}
    response = await client.post(BATCH, headers=acme.headers, json=body)
    assert_problem(response, 400, code)
    assert await stored_counts(rt) == before


async def test_a_batch_without_recipients_field_or_sender_is_refused(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    before = await stored_counts(rt)
    for body in ({"from": "Acme", "body": "x"}, {"body": "x", "recipients": [{"to": NUMBER}]},
                 {"from": "Acme", "recipients": [{"to": NUMBER}]}):
        assert_problem(await client.post(BATCH, headers=acme.headers, json=body), 400,
                "validation_failed")
    assert_problem(await client.post(BATCH, headers={**acme.headers,
                                              "Content-Type": "application/json"},
                              content=b"{nope"), 400, "malformed_json")
    assert_problem(await client.post(BATCH, json={"from": "Acme", "body": "x",
                                           "recipients": [{"to": NUMBER}]}),
            401, "missing_api_key")
    assert await stored_counts(rt) == before
