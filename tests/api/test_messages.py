"""The messages API through the real app, on SQLite and PostgreSQL.

Send, read, list and cancel; encodings and segments; the sandbox carrier's outcomes;
the forward-only lifecycle; scheduling and validity periods; Idempotency-Key; webhooks;
suspended accounts; and what the ``messages`` table holds at rest.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import (
    TEST_ACTOR,
    HookServer,
    Tenant,
    assign,
    hook_server,
    settle,
    stored_counts,
)
from tidings.accounts.models import Account, AccountStatus
from tidings.accounts.service import do_update_account
from tidings.connectors.base import DeliveryReport
from tidings.connectors.sandbox.carrier import SandboxCarrier
from tidings.core.clock import FakeClock
from tidings.jobs.outbox import Job
from tidings.messaging.models import Message, MessageEvent
from tidings.messaging.service import cipher_of
from tidings.messaging.tasks import apply_reports
from tidings.runtime import Runtime
from tidings.storage.ciphers import VaultError
from tidings.storage.db import SYSTEM
from tidings.webhooks.models import WebhookDelivery

MESSAGES = "/v1/messages"
MESSAGE_ID = re.compile(r"^msg_[0-9a-z]{26}$")
PROBLEM = "application/problem+json"

NUMBER = "+12025550173"
OTHER_NUMBER = "+12025550174"
UNDELIVERED, FAILED, CARRIER_EXPIRED, REJECTED = (
    "+12025550100", "+12025550101", "+12025550102", "+12025550103")
THROTTLED, SILENT = "+12025550104", "+12025550105"

RECEIPT = 10  # seconds: past the fixture's 5 s sandbox receipt delay


# --------------------------------------------------------------------------- helpers


def payload(to: str = NUMBER, body: str = "Hello", **extra: Any) -> dict[str, Any]:
    return {"to": to, "from": "Acme", "body": body, **extra}


async def send(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    response = await client.post(MESSAGES, headers=tenant.headers, json=payload(**fields))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def read(client: httpx.AsyncClient, tenant: Tenant, message_id: str) -> dict[str, Any]:
    response = await client.get(f"{MESSAGES}/{message_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def listing(client: httpx.AsyncClient, tenant: Tenant,
                  **params: Any) -> dict[str, Any]:
    response = await client.get(MESSAGES, headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def listed_ids(client: httpx.AsyncClient, tenant: Tenant, **params: Any) -> list[str]:
    return [m["id"] for m in (await listing(client, tenant, **params))["data"]]


def statuses(message: dict[str, Any]) -> list[str]:
    return [e["status"] for e in message["events"]]


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body



async def stored_message(rt: Runtime, message_id: str) -> Message:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        message = await session.get(Message, message_id)
    assert message is not None
    return message


def carrier(rt: Runtime) -> SandboxCarrier:
    connector = rt.connectors.all()[0]
    assert isinstance(connector, SandboxCarrier)
    return connector


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def suspend(rt: Runtime, tenant: Tenant) -> None:
    async with rt.db.transaction(tenant=tenant.id) as session:
        account = await session.get(Account, tenant.id)
        assert account is not None
        await do_update_account(session, account=account, actor=TEST_ACTOR,
                                now=rt.clock.now(), status=AccountStatus.SUSPENDED)


@pytest.fixture
async def other_hooks() -> AsyncIterator[HookServer]:
    """A second webhook receiver, so two URLs can be told apart."""
    async with hook_server("/other") as server:
        yield server


# --------------------------------------------------------------------------- send and read


async def test_send_returns_201_with_the_stored_message(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    before = await stored_counts(rt)
    response = await client.post(MESSAGES, headers=acme.headers, json=payload(body="Hi there"))

    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    sent = response.json()
    assert MESSAGE_ID.match(sent["id"])
    assert sent["status"] == "queued"
    assert sent["to"] == NUMBER
    assert sent["from"] == "Acme"
    assert sent["body"] == "Hi there"
    assert (sent["num_segments"], sent["encoding"]) == (1, "GSM-7")
    assert (sent["direction"], sent["channel"], sent["account_id"]) == (
        "outbound", "sms", acme.id)
    assert at(sent["created_at"]) == clock.now() == at(sent["updated_at"])
    assert sent["send_at"] is None
    assert sent["expires_at"] is None
    assert sent["error_code"] is None
    assert sent["status_callback"] is None

    after = await stored_counts(rt)
    assert after["messages"] == before["messages"] + 1
    assert after["message_events"] == before["message_events"] + 1
    assert after["jobs"] == before["jobs"] + 1  # its dispatch job; no webhook configured

    read_back = await read(client, acme, sent["id"])
    assert {k: v for k, v in read_back.items() if k != "events"} == {
        k: v for k, v in sent.items() if k != "events"}
    assert [(e["seq"], e["status"], e["applied"], e["source"]) for e in read_back["events"]] \
        == [(1, "queued", True, "api")]


@pytest.mark.parametrize(("body", "encoding", "segments"), [
    ("a" * 160, "GSM-7", 1),
    ("a" * 161, "GSM-7", 2),
    ("a" * 306, "GSM-7", 2),
    ("a" * 307, "GSM-7", 3),
    ("€" * 80, "GSM-7", 1),  # extension characters cost two septets: 160
    ("€" * 81, "GSM-7", 2),  # 162 septets
    ("Hello 😀", "UCS-2", 1),
    ("ç", "UCS-2", 1),  # only the capital Ç is in the GSM-7 alphabet
    ("😀" * 35, "UCS-2", 1),  # 70 UTF-16 units
    ("😀" * 36, "UCS-2", 2),  # 72 units
    ("Привет" * 11, "UCS-2", 1),  # 66 units
    ("Привет" * 12, "UCS-2", 2),  # 72 units
    ("a" * 1600, "GSM-7", 11),  # the longest body accepted
])
async def test_encoding_and_segments_through_the_api(
        client: httpx.AsyncClient, acme: Tenant, body: str, encoding: str,
        segments: int) -> None:
    sent = await send(client, acme, body=body)
    assert (sent["encoding"], sent["num_segments"]) == (encoding, segments)
    read_back = await read(client, acme, sent["id"])
    assert (read_back["encoding"], read_back["num_segments"], read_back["body"]) == (
        encoding, segments, body)


@pytest.mark.parametrize("written", [
    "+1 (202) 555-0173", "+1 202 555 0173", "+1-202-555-0173", "+1.202.555.0173",
    "+12025550173"])
async def test_numbers_are_stored_in_e164(client: httpx.AsyncClient, rt: Runtime,
                                          acme: Tenant, written: str) -> None:
    sent = await send(client, acme, to=written, **{"from": "+1 (202) 555-0199"})
    assert sent["to"] == NUMBER
    assert sent["from"] == "+12025550199"
    assert (await read(client, acme, sent["id"]))["to"] == NUMBER

    stored = await stored_message(rt, sent["id"])
    cipher = await cipher_of(await rt.vault.keys_for(acme.id), stored)
    assert cipher is not None
    assert cipher.decrypt(stored.to_enc, field="messages.to") == NUMBER
    assert cipher.decrypt(stored.from_enc, field="messages.from") == "+12025550199"
    # The blind index is of the normalised number, so an exact look-up finds it.
    assert await listed_ids(client, acme, to=NUMBER) == [sent["id"]]


async def test_read_shows_the_whole_event_history(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    sent = await send(client, acme)
    await settle(rt, clock)
    sent_at = clock.now()
    await settle(rt, clock, seconds=RECEIPT)

    message = await read(client, acme, sent["id"])
    assert message["status"] == "delivered"
    assert message["error_code"] is None
    assert [(e["seq"], e["status"], e["applied"], e["source"]) for e in message["events"]] == [
        (1, "queued", True, "api"), (2, "sent", True, "dispatcher"),
        (3, "delivered", True, "carrier")]
    assert [at(e["created_at"]) for e in message["events"]] == [
        sent_at, sent_at, clock.now()]
    assert at(message["updated_at"]) == clock.now()
    assert at(message["created_at"]) == sent_at


# --------------------------------------------------------------------------- listing


async def _send_in_order(client: httpx.AsyncClient, tenant: Tenant, n: int) -> list[str]:
    ids = []
    for i in range(n):
        ids.append((await send(client, tenant, body=f"message {i}"))["id"])
        await asyncio.sleep(0.002)  # ids order by creation at millisecond resolution
    return ids


async def test_cursor_pagination_pages_newest_first_without_overlap(
        client: httpx.AsyncClient, acme: Tenant, globex: Tenant) -> None:
    created = await _send_in_order(client, acme, 7)
    await send(client, globex)  # another tenant's message never shows up

    pages: list[list[str]] = []
    cursors: list[str | None] = []
    params: dict[str, Any] = {"limit": 3}
    for _ in range(5):  # bounded: a broken cursor must not loop forever
        page = await listing(client, acme, **params)
        pages.append([m["id"] for m in page["data"]])
        cursors.append(page["next_cursor"])
        if page["next_cursor"] is None:
            break
        params = {"limit": 3, "cursor": page["next_cursor"]}

    assert [len(p) for p in pages] == [3, 3, 1]
    assert cursors[:2] == [c for c in cursors[:2] if c]
    assert cursors[2] is None
    flat = [i for p in pages for i in p]
    assert len(set(flat)) == 7
    assert flat == list(reversed(created))  # newest first, each exactly once
    assert await listed_ids(client, acme) == list(reversed(created))  # default limit: all


async def test_a_last_full_page_has_no_cursor(client: httpx.AsyncClient,
                                              acme: Tenant) -> None:
    created = await _send_in_order(client, acme, 6)
    first = await listing(client, acme, limit=3)
    assert first["next_cursor"] is not None
    second = await listing(client, acme, limit=3, cursor=first["next_cursor"])
    assert [m["id"] for m in first["data"] + second["data"]] == list(reversed(created))
    assert second["next_cursor"] is None
    assert (await listing(client, acme, limit=6))["next_cursor"] is None
    assert (await listing(client, acme, limit=5))["next_cursor"] is not None


async def test_list_filters_by_status(client: httpx.AsyncClient, rt: Runtime,
                                      clock: FakeClock, acme: Tenant) -> None:
    delivered = sorted([(await send(client, acme))["id"], (await send(client, acme))["id"]])
    rejected = (await send(client, acme, to=REJECTED))["id"]
    undelivered = (await send(client, acme, to=UNDELIVERED))["id"]
    await settle(rt, clock)
    await settle(rt, clock, seconds=RECEIPT)
    sent = (await send(client, acme, to=SILENT))["id"]
    await settle(rt, clock)
    queued = (await send(client, acme))["id"]
    scheduled = (await send(client, acme,
                            send_at=(clock.now() + timedelta(hours=1)).isoformat()))["id"]

    assert sorted(await listed_ids(client, acme, status="delivered")) == delivered
    assert await listed_ids(client, acme, status="rejected") == [rejected]
    assert await listed_ids(client, acme, status="undelivered") == [undelivered]
    assert await listed_ids(client, acme, status="sent") == [sent]
    assert await listed_ids(client, acme, status="queued") == [queued]
    assert await listed_ids(client, acme, status="scheduled") == [scheduled]
    assert await listed_ids(client, acme, status="failed") == []
    assert len(await listed_ids(client, acme)) == 7
    # Filters combine with pagination.
    page = await listing(client, acme, status="delivered", limit=1)
    rest = await listing(client, acme, status="delivered", limit=1, cursor=page["next_cursor"])
    assert sorted([page["data"][0]["id"], rest["data"][0]["id"]]) == delivered
    assert rest["next_cursor"] is None
    bad = await client.get(MESSAGES, headers=acme.headers, params={"status": "lost"})
    problem(bad, 400, "validation_failed")


async def test_list_filters_by_exact_number(client: httpx.AsyncClient, acme: Tenant,
                                            globex: Tenant) -> None:
    to_first = [(await send(client, acme))["id"], (await send(client, acme))["id"]]
    to_other = (await send(client, acme, to=OTHER_NUMBER))["id"]
    await send(client, globex)  # same number, another tenant (another blind-index key)

    assert sorted(await listed_ids(client, acme, to=NUMBER)) == sorted(to_first)
    assert sorted(await listed_ids(client, acme, to="+1 (202) 555-0173")) == sorted(to_first)
    assert await listed_ids(client, acme, to=OTHER_NUMBER) == [to_other]
    assert await listed_ids(client, acme, to="+12025550175") == []
    for bad_number in ("not a number", "+1202555017", "2025550173"):
        bad = await client.get(MESSAGES, headers=acme.headers, params={"to": bad_number})
        problem(bad, 400, "invalid_phone_number")


async def test_list_filters_by_channel_and_direction(client: httpx.AsyncClient, rt: Runtime,
                                                     acme: Tenant) -> None:
    await assign(rt, acme.id, "+12025550199")
    inbound = await client.post("/v1/sandbox/inbound", headers=acme.headers, json={
        "from": NUMBER, "to": "+12025550199", "body": "Reply"})
    assert inbound.status_code == 201, inbound.text
    outbound = (await send(client, acme))["id"]

    assert await listed_ids(client, acme, direction="outbound") == [outbound]
    assert await listed_ids(client, acme, direction="inbound") == [inbound.json()["id"]]
    assert sorted(await listed_ids(client, acme, channel="sms")) == sorted(
        [outbound, inbound.json()["id"]])
    assert await listed_ids(client, acme, channel="whatsapp") == []
    assert await listed_ids(client, acme, channel="sms", direction="inbound") == [
        inbound.json()["id"]]
    bad = await client.get(MESSAGES, headers=acme.headers, params={"direction": "sideways"})
    problem(bad, 400, "validation_failed")


async def test_list_filters_by_creation_time(client: httpx.AsyncClient, clock: FakeClock,
                                             acme: Tenant) -> None:
    times, ids = [], []
    for _ in range(3):
        times.append(clock.now())
        ids.append((await send(client, acme))["id"])
        clock.advance(60)

    def iso(moment: datetime) -> str:
        return moment.isoformat()

    # created_after is inclusive, created_before exclusive.
    assert await listed_ids(client, acme, created_after=iso(times[1])) == [ids[2], ids[1]]
    assert await listed_ids(client, acme, created_before=iso(times[1])) == [ids[0]]
    assert await listed_ids(client, acme, created_after=iso(times[0]),
                            created_before=iso(times[2])) == [ids[1], ids[0]]
    assert await listed_ids(client, acme, created_after=iso(times[2] + timedelta(seconds=1))) \
        == []
    # Another offset names the same instant.
    plus_two = times[1].astimezone(timezone(timedelta(hours=2)))
    assert await listed_ids(client, acme, created_after=plus_two.isoformat()) == [
        ids[2], ids[1]]
    naive = await client.get(MESSAGES, headers=acme.headers,
                             params={"created_after": "2026-01-01T00:00:00"})
    problem(naive, 400, "validation_failed")


# --------------------------------------------------------------------------- carrier outcomes


@pytest.mark.parametrize(("to", "status", "error_code", "history"), [
    (UNDELIVERED, "undelivered", "sandbox_undelivered", ["queued", "sent", "undelivered"]),
    (FAILED, "failed", "sandbox_failed", ["queued", "sent", "failed"]),
    (CARRIER_EXPIRED, "expired", "sandbox_expired", ["queued", "sent", "expired"]),
    (REJECTED, "rejected", "sandbox_rejected", ["queued", "rejected"]),
    (NUMBER, "delivered", None, ["queued", "sent", "delivered"]),
])
async def test_sandbox_magic_numbers_end_in_their_status(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant, to: str,
        status: str, error_code: str | None, history: list[str]) -> None:
    sent = await send(client, acme, to=to)
    await settle(rt, clock)
    await settle(rt, clock, seconds=RECEIPT)
    message = await read(client, acme, sent["id"])
    assert (message["status"], message["error_code"]) == (status, error_code)
    assert statuses(message) == history
    assert message["events"][-1]["error_code"] == error_code
    assert all(e["applied"] for e in message["events"])
    stats = await carrier(rt).stats()
    assert stats["rows"] == 1
    assert stats["receipts_pending"] == 0


async def test_a_throttled_message_is_retried_then_delivered(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    sent = await send(client, acme, to=THROTTLED)
    await settle(rt, clock)

    message = await read(client, acme, sent["id"])
    assert message["status"] == "queued"
    assert [(e["status"], e["applied"], e["error_code"]) for e in message["events"]] == [
        ("queued", True, None), ("retrying", False, "sandbox_throttled")]
    assert (await carrier(rt).stats())["accepted"] == 0

    await settle(rt, clock)  # the retry is not due before its delay
    assert (await read(client, acme, sent["id"]))["status"] == "queued"
    assert (await carrier(rt).stats())["resubmissions"] == 0

    await settle(rt, clock, seconds=2)  # past the carrier's 1 s retry-after
    message = await read(client, acme, sent["id"])
    assert message["status"] == "sent"
    stats = await carrier(rt).stats()
    assert (stats["rows"], stats["accepted"], stats["resubmissions"]) == (1, 1, 1)

    await settle(rt, clock, seconds=RECEIPT)
    message = await read(client, acme, sent["id"])
    assert message["status"] == "delivered"
    assert message["error_code"] is None
    assert statuses(message) == ["queued", "retrying", "sent", "delivered"]
    assert [e["seq"] for e in message["events"]] == [1, 2, 3, 4]


# --------------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize("late", ["undelivered", "delivered", "failed"])
async def test_a_receipt_after_delivery_is_kept_but_not_applied(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        hooks: HookServer, late: str) -> None:
    sent = await send(client, acme, status_callback=hooks.url)
    await settle(rt, clock)
    await settle(rt, clock, seconds=RECEIPT)
    assert (await read(client, acme, sent["id"]))["status"] == "delivered"
    stored = await stored_message(rt, sent["id"])
    assert stored.connector == "sandbox"
    assert stored.carrier_message_id

    clock.advance(30)
    taken = await apply_reports(rt, "sandbox", [
        DeliveryReport(stored.carrier_message_id, late, "late_code")])  # type: ignore[arg-type]
    assert taken == [True]
    await settle(rt, clock)

    message = await read(client, acme, sent["id"])
    assert message["status"] == "delivered"
    assert message["error_code"] is None
    assert at(message["updated_at"]) < clock.now()
    assert [(e["status"], e["applied"]) for e in message["events"]] == [
        ("queued", True), ("sent", True), ("delivered", True), (late, False)]
    assert message["events"][-1]["error_code"] == "late_code"
    assert message["events"][-1]["source"] == "carrier"
    # No webhook for a report that changed nothing.
    assert [b["data"]["status"] for b in hooks.bodies()] == ["queued", "sent", "delivered"]


async def test_reports_for_unknown_carrier_ids_are_not_taken(rt: Runtime) -> None:
    assert await apply_reports(rt, "sandbox", [DeliveryReport("SBXnope", "delivered")]) == [
        False]


# --------------------------------------------------------------------------- scheduling


async def test_a_scheduled_message_waits_for_its_time(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        hooks: HookServer) -> None:
    send_at = clock.now() + timedelta(hours=1)
    sent = await send(client, acme, send_at=send_at.isoformat(), status_callback=hooks.url)
    assert sent["status"] == "scheduled"
    assert at(sent["send_at"]) == send_at

    await settle(rt, clock)
    await settle(rt, clock, seconds=1800)
    assert (await read(client, acme, sent["id"]))["status"] == "scheduled"
    assert (await carrier(rt).stats())["rows"] == 0

    await settle(rt, clock, seconds=1801)  # now past send_at
    message = await read(client, acme, sent["id"])
    assert message["status"] == "sent"
    assert (await carrier(rt).stats())["rows"] == 1

    await settle(rt, clock, seconds=RECEIPT)
    message = await read(client, acme, sent["id"])
    assert message["status"] == "delivered"
    assert statuses(message) == ["scheduled", "queued", "sent", "delivered"]
    assert [(e["source"]) for e in message["events"]] == [
        "api", "scheduler", "dispatcher", "carrier"]
    assert [b["data"]["status"] for b in hooks.bodies()] == [
        "scheduled", "queued", "sent", "delivered"]


async def test_send_at_in_another_offset_is_the_same_instant(
        client: httpx.AsyncClient, clock: FakeClock, acme: Tenant) -> None:
    send_at = (clock.now() + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=-5)))
    sent = await send(client, acme, send_at=send_at.isoformat())
    assert sent["status"] == "scheduled"
    assert at(sent["send_at"]) == send_at
    # Stored and answered in UTC, by the create response and a later read alike.
    assert at(sent["send_at"]).utcoffset() == timedelta(0)
    assert (await read(client, acme, sent["id"]))["send_at"] == sent["send_at"]


async def test_send_at_within_the_clock_skew_sends_now(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    sent = await send(client, acme, send_at=(clock.now() - timedelta(seconds=30)).isoformat())
    assert sent["status"] == "queued"
    assert sent["send_at"] is None
    await settle(rt, clock)
    assert (await read(client, acme, sent["id"]))["status"] == "sent"


async def test_cancel_a_scheduled_message(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        hooks: HookServer) -> None:
    send_at = clock.now() + timedelta(minutes=10)
    sent = await send(client, acme, send_at=send_at.isoformat(), status_callback=hooks.url)
    clock.advance(60)

    canceled = await client.post(f"{MESSAGES}/{sent['id']}/cancel", headers=acme.headers)
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["id"] == sent["id"]
    assert at(canceled.json()["updated_at"]) == clock.now()

    await settle(rt, clock, seconds=3600)  # long past send_at
    message = await read(client, acme, sent["id"])
    assert message["status"] == "canceled"
    assert [(e["status"], e["source"]) for e in message["events"]] == [
        ("scheduled", "api"), ("canceled", "api")]
    stats = await carrier(rt).stats()
    assert stats["rows"] == 0  # never submitted
    assert [b["data"]["status"] for b in hooks.bodies()] == ["scheduled", "canceled"]
    assert (await stored_counts(rt))["jobs"] == 0  # the dispatch job finished without sending

    again = await client.post(f"{MESSAGES}/{sent['id']}/cancel", headers=acme.headers)
    problem(again, 409, "message_not_cancelable")


async def test_only_scheduled_messages_can_be_canceled(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    queued = await send(client, acme)
    response = await client.post(f"{MESSAGES}/{queued['id']}/cancel", headers=acme.headers)
    problem(response, 409, "message_not_cancelable")
    assert (await read(client, acme, queued["id"]))["status"] == "queued"

    await settle(rt, clock)
    await settle(rt, clock, seconds=RECEIPT)
    response = await client.post(f"{MESSAGES}/{queued['id']}/cancel", headers=acme.headers)
    problem(response, 409, "message_not_cancelable")
    message = await read(client, acme, queued["id"])
    assert message["status"] == "delivered"
    assert statuses(message) == ["queued", "sent", "delivered"]
    assert (await carrier(rt).stats())["rows"] == 1


# --------------------------------------------------------------------------- validity period


async def test_a_message_without_receipt_expires_after_its_validity(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        hooks: HookServer) -> None:
    sent = await send(client, acme, to=SILENT, validity_period=60, status_callback=hooks.url)
    assert at(sent["expires_at"]) == clock.now() + timedelta(seconds=60)
    await settle(rt, clock)
    await settle(rt, clock, seconds=30)
    assert (await read(client, acme, sent["id"]))["status"] == "sent"

    await settle(rt, clock, seconds=31)
    message = await read(client, acme, sent["id"])
    assert message["status"] == "expired"
    assert message["error_code"] == "validity_period_elapsed"
    assert [(e["status"], e["source"]) for e in message["events"]] == [
        ("queued", "api"), ("sent", "dispatcher"), ("expired", "scheduler")]
    assert [b["data"]["status"] for b in hooks.bodies()] == ["queued", "sent", "expired"]
    assert (await stored_counts(rt))["jobs"] == 0


async def test_a_delivered_message_does_not_expire(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    sent = await send(client, acme, validity_period=60)
    await settle(rt, clock)
    await settle(rt, clock, seconds=RECEIPT)
    await settle(rt, clock, seconds=120)
    message = await read(client, acme, sent["id"])
    assert message["status"] == "delivered"
    assert statuses(message) == ["queued", "sent", "delivered"]


async def test_a_message_whose_validity_passed_before_dispatch_is_never_submitted(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    sent = await send(client, acme, validity_period=5)
    clock.advance(10)  # the workers were busy: nothing dispatched in time
    await settle(rt, clock)
    message = await read(client, acme, sent["id"])
    assert message["status"] == "expired"
    assert message["error_code"] == "validity_period_elapsed"
    assert statuses(message) == ["queued", "expired"]
    assert (await carrier(rt).stats())["rows"] == 0
    await settle(rt, clock, seconds=RECEIPT)
    assert (await read(client, acme, sent["id"]))["status"] == "expired"


async def test_the_validity_of_a_scheduled_message_starts_at_its_send_time(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    send_at = clock.now() + timedelta(minutes=10)
    sent = await send(client, acme, send_at=send_at.isoformat(), validity_period=30)
    assert at(sent["expires_at"]) == send_at + timedelta(seconds=30)
    await settle(rt, clock, seconds=601)
    await settle(rt, clock, seconds=RECEIPT)
    assert (await read(client, acme, sent["id"]))["status"] == "delivered"


# --------------------------------------------------------------------------- idempotency


async def test_the_same_key_and_body_give_the_same_message(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    headers = {**acme.headers, "Idempotency-Key": "order-42"}
    first = await client.post(MESSAGES, headers=headers, json=payload())
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    await settle(rt, clock)

    second = await client.post(MESSAGES, headers=headers, json=payload())
    assert second.status_code == 201, second.text
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["to"] == NUMBER
    assert second.json()["body"] == "Hello"

    # Key order in the JSON does not make it another request.
    reordered = dict(reversed(list(payload().items())))
    third = await client.post(MESSAGES, headers=headers, json=reordered)
    assert third.status_code == 201
    assert third.json()["id"] == first.json()["id"]

    stored = await stored_counts(rt)
    assert (stored["messages"], stored["idempotency_keys"]) == (1, 1)
    await settle(rt, clock, seconds=RECEIPT)
    assert (await carrier(rt).stats())["rows"] == 1
    assert await listed_ids(client, acme) == [first.json()["id"]]


async def test_the_same_key_with_another_body_is_a_conflict(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    headers = {**acme.headers, "Idempotency-Key": "order-43"}
    first = await client.post(MESSAGES, headers=headers, json=payload())
    assert first.status_code == 201
    before = await stored_counts(rt)

    for changed in (payload(body="Hello!"), payload(to=OTHER_NUMBER),
                    payload(validity_period=60)):
        response = await client.post(MESSAGES, headers=headers, json=changed)
        problem(response, 409, "idempotency_key_reused")
    assert await stored_counts(rt) == before
    assert await listed_ids(client, acme) == [first.json()["id"]]


async def test_tenants_use_keys_independently(client: httpx.AsyncClient, rt: Runtime,
                                              acme: Tenant, globex: Tenant) -> None:
    key = {"Idempotency-Key": "shared-key"}
    a = await client.post(MESSAGES, headers={**acme.headers, **key}, json=payload())
    g = await client.post(MESSAGES, headers={**globex.headers, **key},
                          json=payload(body="Other body"))
    assert a.status_code == g.status_code == 201, (a.text, g.text)
    assert "idempotent-replayed" not in g.headers
    assert a.json()["id"] != g.json()["id"]
    assert g.json()["account_id"] == globex.id
    assert (await stored_counts(rt))["messages"] == 2

    again = await client.post(MESSAGES, headers={**globex.headers, **key},
                              json=payload(body="Other body"))
    assert again.json()["id"] == g.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_other_keys_or_no_key_make_new_messages(client: httpx.AsyncClient, rt: Runtime,
                                                      acme: Tenant) -> None:
    ids = set()
    for key in ("k1", "k2"):
        response = await client.post(MESSAGES, headers={**acme.headers, "Idempotency-Key": key},
                                     json=payload())
        ids.add(response.json()["id"])
    ids.add((await send(client, acme))["id"])
    ids.add((await send(client, acme))["id"])
    assert len(ids) == 4
    assert (await stored_counts(rt))["messages"] == 4


# --------------------------------------------------------------------------- webhooks


async def test_account_webhook_and_status_callback_both_get_every_event(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        hooks: HookServer, other_hooks: HookServer) -> None:
    patched = await client.patch("/v1/account", headers=acme.headers,
                                 json={"webhook_url": other_hooks.url})
    assert patched.status_code == 200, patched.text
    sent = await send(client, acme, status_callback=hooks.url)
    await settle(rt, clock)
    await settle(rt, clock, seconds=RECEIPT)

    expected = ["queued", "sent", "delivered"]
    for server in (hooks, other_hooks):
        bodies = sorted(server.bodies(), key=lambda b: b["sequence"])
        assert [b["data"]["status"] for b in bodies] == expected
        assert [b["sequence"] for b in bodies] == [1, 2, 3]
        assert {b["data"]["message_id"] for b in bodies} == {sent["id"]}
        assert {b["type"] for b in bodies} == {"message.status"}
        assert all(b["data"]["to"] == NUMBER for b in bodies)
    # One event, two deliveries: the event id is the same at both URLs.
    assert sorted(b["id"] for b in hooks.bodies()) == sorted(
        b["id"] for b in other_hooks.bodies())


async def test_a_url_that_is_both_callback_and_account_webhook_gets_each_event_once(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        hooks: HookServer) -> None:
    await client.patch("/v1/account", headers=acme.headers, json={"webhook_url": hooks.url})
    await send(client, acme, status_callback=hooks.url)
    await send(client, acme)  # no callback: only the account webhook
    await settle(rt, clock)
    await settle(rt, clock, seconds=RECEIPT)
    assert sorted(b["data"]["status"] for b in hooks.bodies()) == sorted(
        ["queued", "sent", "delivered"] * 2)


# --------------------------------------------------------------------------- suspended


async def test_a_suspended_account_cannot_send(client: httpx.AsyncClient, rt: Runtime,
                                               acme: Tenant) -> None:
    await suspend(rt, acme)
    before = await stored_counts(rt)
    response = await client.post(MESSAGES, headers=acme.headers, json=payload())
    problem(response, 403, "account_suspended")
    keyed = await client.post(MESSAGES, headers={**acme.headers, "Idempotency-Key": "x"},
                              json=payload())
    problem(keyed, 403, "account_suspended")
    batch = await client.post(f"{MESSAGES}/batch", headers=acme.headers, json={
        "from": "Acme", "body": "Hi", "recipients": [{"to": NUMBER}]})
    problem(batch, 403, "account_suspended")
    assert await stored_counts(rt) == before


# --------------------------------------------------------------------------- data at rest


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


async def test_personal_data_is_not_stored_in_clear(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        database_url: str, hooks: HookServer) -> None:
    secret_body = "The vault code is 8472-XYZZY"
    sent = await send(client, acme, to="+1 (202) 555-0173", body=secret_body,
                      **{"from": "+12025550199"}, status_callback=hooks.url)
    await settle(rt, clock)
    await settle(rt, clock, seconds=RECEIPT)
    plaintexts = [b"2025550173", b"2025550199", b"8472-XYZZY", b"vault code",
                  secret_body.encode("utf-16-le")]

    table = Message.__table__
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        row = (await session.execute(select(table).where(table.c.id == sent["id"]))).one()
        other_rows = {
            name: (await session.execute(select(model.__table__))).all()
            for name, model in (("message_events", MessageEvent), ("jobs", Job),
                                ("webhook_deliveries", WebhookDelivery))}
    raw = b"|".join(_as_bytes(v) for v in row)
    for plain in plaintexts:
        assert plain not in raw
    for name, rows in other_rows.items():
        dump = b"|".join(_as_bytes(v) for r in rows for v in r)
        for plain in plaintexts:
            assert plain not in dump, name

    # It is ciphertext of the values, not something else: the recipient's key opens it,
    # and the tenant's own data key does not.
    keys = await rt.vault.keys_for(acme.id)
    assert keys.subjects is not None
    [subject] = (await keys.subjects.by_ids([row.subject_key])).values()
    assert subject.decrypt(row.body_enc, field="messages.body") == secret_body
    assert subject.decrypt(row.to_enc, field="messages.to") == NUMBER
    with pytest.raises(VaultError):
        keys.decrypt(row.body_enc, field="messages.body")
    assert row.to_index == keys.blind_index(NUMBER, field="messages.to")

    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[1]
        blob = b""
        for suffix in ("", "-wal"):
            try:
                with open(path + suffix, "rb") as handle:
                    blob += handle.read()
            except FileNotFoundError:
                pass
        assert blob
        for plain in plaintexts:
            assert plain not in blob
