"""Webhook delivery end to end: signatures, event ids, sequences, retries and giving up.

Time is the runtime's FakeClock: the tests move it to each planned attempt and let the
workers run (``settle``); nothing here waits on the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import text

from tests.conftest import HookServer, Tenant, assert_problem, assign, make_tenant, settle
from tidings.core.clock import FakeClock
from tidings.migrations.run import alembic_config
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM, sqlite_file
from tidings.webhooks.backoff import DEFAULT_BASE_SECONDS, DEFAULT_JITTER
from tidings.webhooks.scheduling import Slots
from tidings.webhooks.sender import WebhookRequest
from tidings.webhooks.service import DELIVER_JOB
from tidings.webhooks.signing import SIGNATURE_HEADER, SignatureError, verify

NUMBER = "+12025550173"
SEND = {"to": "+12025550173", "from": "Acme", "body": "Hello", "channel": "sms"}



def closed_port_url() -> str:
    """A loopback URL nothing listens on: connections to it are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def when(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


async def deliveries(client: httpx.AsyncClient, headers: dict[str, str],
                     **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/webhook-deliveries", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def delivery(client: httpx.AsyncClient, headers: dict[str, str],
                   delivery_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/webhook-deliveries/{delivery_id}", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def one_inbound(client: httpx.AsyncClient, rt: Runtime, tenant: Tenant) -> dict[str, Any]:
    """An inbound message: exactly one webhook (no carrier receipts to follow)."""
    await assign(rt, tenant.id, NUMBER)
    response = await client.post("/v1/sandbox/inbound", headers=tenant.headers, json={
        "from": "+14155550100", "to": NUMBER, "body": "ping"})
    assert response.status_code == 201, response.text
    return dict(response.json())


def verify_request(tenant: Tenant, request: dict[str, Any], clock: FakeClock) -> None:
    verify(tenant.made.webhook_secret, request["raw"], request["headers"][SIGNATURE_HEADER],
           now=int(clock.now().timestamp()))


async def test_every_webhook_is_signed_with_an_id_a_type_and_a_sequence(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer,
        globex: Tenant) -> None:
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    first = (await client.post("/v1/messages", headers=acme.headers, json=SEND)).json()
    second = (await client.post("/v1/messages", headers=acme.headers, json=SEND)).json()
    await settle(rt, clock)
    await settle(rt, clock, seconds=10)

    assert len(hooks.requests) == 6
    for request in hooks.requests:
        verify_request(acme, request, clock)
        with pytest.raises(SignatureError):
            verify(globex.made.webhook_secret, request["raw"],
                   request["headers"][SIGNATURE_HEADER], now=int(clock.now().timestamp()))
        body = request["json"]
        assert body["type"] == "message.status"
        assert body["account_id"] == acme.id
        assert request["headers"]["Tidings-Event-Id"] == body["id"]
        # A tampered body no longer matches its signature.
        with pytest.raises(SignatureError):
            verify(acme.made.webhook_secret, request["raw"].replace(b"Acme", b"Evil"),
                   request["headers"][SIGNATURE_HEADER], now=int(clock.now().timestamp()))
    ids = [b["id"] for b in hooks.bodies()]
    assert len(set(ids)) == 6
    assert all(i.startswith("evt_") for i in ids)
    for message in (first, second):
        mine = [b for b in hooks.bodies() if b["data"]["message_id"] == message["id"]]
        assert sorted((b["sequence"], b["data"]["status"]) for b in mine) == [
            (1, "queued"), (2, "sent"), (3, "delivered")]

    # The delivery id header leads to the stored delivery of that very event.
    request = hooks.requests[0]
    stored = await delivery(client, acme.headers, request["headers"]["Tidings-Delivery-Id"])
    assert stored["event_id"] == request["json"]["id"]
    assert (stored["status"], stored["attempts"], stored["url"]) == ("succeeded", 1, hooks.url)
    assert [a["status_code"] for a in stored["attempt_log"]] == [200]


async def test_an_account_that_wants_final_statuses_gets_one_webhook_per_message(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    chosen = await client.patch("/v1/account", headers=acme.headers,
                                json={"webhook_statuses": ["final"]})
    assert chosen.status_code == 200, chosen.text
    own_callback = f"{hooks.url}?mine=1"
    delivered = (await client.post("/v1/messages", headers=acme.headers, json=SEND)).json()
    rejected = (await client.post("/v1/messages", headers=acme.headers, json={
        **SEND, "to": "+12025550103", "status_callback": own_callback})).json()
    await settle(rt, clock)
    await settle(rt, clock, seconds=10)

    got = sorted((b["data"]["message_id"], b["sequence"], b["data"]["status"])
                 for b in hooks.bodies())
    assert got == sorted([(delivered["id"], 3, "delivered"),  # queued and sent not POSTed
                          (rejected["id"], 2, "rejected"), (rejected["id"], 2, "rejected")])
    history = (await client.get(f"/v1/messages/{delivered['id']}", headers=acme.headers)).json()
    assert [e["status"] for e in history["events"]] == ["queued", "sent", "delivered"]

    await client.patch("/v1/account", headers=acme.headers, json={"webhook_statuses": None})
    again = (await client.post("/v1/messages", headers=acme.headers, json=SEND)).json()
    await settle(rt, clock)
    await settle(rt, clock, seconds=10)
    assert [b["data"]["status"] for b in hooks.bodies()
            if b["data"]["message_id"] == again["id"]] == ["queued", "sent", "delivered"]


async def test_failing_receiver_is_retried_with_exponential_backoff(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    hooks.status = 500
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    message = await one_inbound(client, rt, acme)
    await settle(rt, clock)

    [listed] = await deliveries(client, acme.headers)
    assert listed["message_id"] == message["id"]
    assert (listed["status"], listed["attempts"], listed["last_status_code"]) == (
        "pending", 1, 500)
    assert listed["last_error"] == "HTTP 500"
    assert listed["completed_at"] is None
    assert listed["attempt_log"] is None  # only the single read carries the log

    gaps: list[float] = []
    for attempt in range(1, 6):
        current = await delivery(client, acme.headers, listed["id"])
        assert (current["status"], current["attempts"]) == ("pending", attempt)
        assert [a["number"] for a in current["attempt_log"]] == list(range(1, attempt + 1))
        assert all(a["status_code"] == 500 and a["error"] == "HTTP 500"
                   for a in current["attempt_log"])
        assert when(current["attempt_log"][-1]["created_at"]) == clock.now()
        assert len(hooks.requests) == attempt
        verify_request(acme, hooks.requests[-1], clock)
        gap = (when(current["next_attempt_at"]) - clock.now()).total_seconds()
        nominal = DEFAULT_BASE_SECONDS * 2 ** (attempt - 1)
        assert nominal * (1 - DEFAULT_JITTER) <= gap <= nominal * (1 + DEFAULT_JITTER)
        gaps.append(gap)
        if attempt == 5:
            break
        # Not yet due: nothing happens.
        planned = when(current["next_attempt_at"])
        await settle(rt, clock, seconds=gap / 2)
        assert len(hooks.requests) == attempt
        await settle(rt, clock, seconds=(planned - clock.now()).total_seconds())
        assert len(hooks.requests) == attempt + 1
    assert gaps == sorted(gaps)
    assert len(set(gaps)) == len(gaps)

    hooks.status = 200
    await settle(rt, clock, seconds=gaps[-1])
    done = await delivery(client, acme.headers, listed["id"])
    assert (done["status"], done["attempts"], done["last_status_code"]) == ("succeeded", 6, 200)
    assert (done["next_attempt_at"], done["last_error"]) == (None, None)
    assert when(done["completed_at"]) == clock.now()
    assert [a["status_code"] for a in done["attempt_log"]] == [500] * 5 + [200]
    verify_request(acme, hooks.requests[-1], clock)
    # Every attempt carried the same event (receivers deduplicate on its id).
    assert len({r["json"]["id"] for r in hooks.requests}) == 1
    assert {r["headers"]["Tidings-Delivery-Id"] for r in hooks.requests} == {listed["id"]}

    # Done means done.
    await settle(rt, clock, seconds=7200)
    assert len(hooks.requests) == 6


async def test_unreachable_receiver_is_retried(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock) -> None:
    acme = await make_tenant(rt, "Acme", webhook_url=closed_port_url())
    await one_inbound(client, rt, acme)
    await settle(rt, clock)
    [first] = await deliveries(client, acme.headers)
    assert (first["status"], first["attempts"], first["last_status_code"]) == (
        "pending", 1, None)
    assert first["last_error"]
    gap = (when(first["next_attempt_at"]) - clock.now()).total_seconds()
    assert gap > 0

    await settle(rt, clock, seconds=gap)
    second = await delivery(client, acme.headers, first["id"])
    assert (second["status"], second["attempts"]) == ("pending", 2)
    assert [(a["number"], a["status_code"]) for a in second["attempt_log"]] == [
        (1, None), (2, None)]
    assert all(a["error"] for a in second["attempt_log"])
    assert when(second["next_attempt_at"]) > clock.now()


async def test_delivery_fails_after_the_max_age(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    hooks.status = 500
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    await one_inbound(client, rt, acme)
    await settle(rt, clock)
    [pending] = await deliveries(client, acme.headers)
    assert pending["status"] == "pending"

    await settle(rt, clock, seconds=rt.settings.webhook_max_age_seconds + 60)
    failed = await delivery(client, acme.headers, pending["id"])
    assert failed["status"] == "failed"
    assert (failed["attempts"], failed["next_attempt_at"]) == (2, None)
    assert when(failed["completed_at"]) == clock.now()
    assert [d["id"] for d in await deliveries(client, acme.headers, status="failed")] == [
        pending["id"]]
    assert await deliveries(client, acme.headers, status="pending") == []

    # A failed delivery is never tried again, even if the receiver recovers.
    hooks.status = 200
    await settle(rt, clock, seconds=7 * 24 * 3600)
    assert len(hooks.requests) == 2
    assert (await delivery(client, acme.headers, pending["id"]))["status"] == "failed"


async def test_no_attempt_is_made_once_the_max_age_has_passed(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    """Follow every planned retry of an always-failing receiver to the end."""
    hooks.status = 503
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    await one_inbound(client, rt, acme)
    await settle(rt, clock)
    [current] = await deliveries(client, acme.headers)
    created = when(current["created_at"])
    deadline = created + timedelta(seconds=rt.settings.webhook_max_age_seconds)

    for _ in range(200):
        if current["status"] != "pending":
            break
        planned = when(current["next_attempt_at"])
        assert planned < deadline, "a retry was planned after the max age"
        await settle(rt, clock, seconds=(planned - clock.now()).total_seconds())
        current = await delivery(client, acme.headers, current["id"])
    assert current["status"] == "failed"
    log = current["attempt_log"]
    assert len(log) == current["attempts"] == len(hooks.requests)
    assert current["attempts"] > 20  # retried all day long, an hour apart at the end
    assert all(when(a["created_at"]) < deadline for a in log)


async def test_deliveries_of_another_tenant_are_invisible(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer,
        globex: Tenant) -> None:
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    message = await one_inbound(client, rt, acme)
    await settle(rt, clock)
    [mine] = await deliveries(client, acme.headers)

    assert_problem(await client.get(f"/v1/webhook-deliveries/{mine['id']}",
                                    headers=globex.headers), 404,
                   "webhook_delivery_not_found")
    assert await deliveries(client, globex.headers) == []
    assert await deliveries(client, globex.headers, message_id=message["id"]) == []
    assert await deliveries(client, globex.headers, status="succeeded") == []
    assert_problem(await client.get("/v1/webhook-deliveries/whd_doesnotexist",
                                    headers=acme.headers), 404, "webhook_delivery_not_found")

    # A sub-account's deliveries are its own: visible to the parent only acting as it.
    sub = await make_tenant(rt, "Acme Sub", parent=acme.id, webhook_url=hooks.url)
    await assign(rt, sub.id, "+442079460958")
    assert (await client.post("/v1/sandbox/inbound", headers=sub.headers, json={
        "from": "+14155550100", "to": "+442079460958", "body": "x"})).status_code == 201
    await settle(rt, clock)
    [theirs] = await deliveries(client, sub.headers)
    assert [d["id"] for d in await deliveries(client, acme.headers)] == [mine["id"]]
    assert_problem(await client.get(f"/v1/webhook-deliveries/{theirs['id']}",
                                    headers=acme.headers), 404, "webhook_delivery_not_found")
    acting = {**acme.headers, "Tidings-Account": sub.id}
    assert (await delivery(client, acting, theirs["id"]))["id"] == theirs["id"]


async def test_listing_filters_and_pages(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    first = (await client.post("/v1/messages", headers=acme.headers, json=SEND)).json()
    second = (await client.post("/v1/messages", headers=acme.headers, json=SEND)).json()
    await settle(rt, clock)
    await settle(rt, clock, seconds=10)

    every = await deliveries(client, acme.headers)
    assert len(every) == 6
    assert [d["id"] for d in every] == sorted((d["id"] for d in every), reverse=True)
    assert {d["status"] for d in every} == {"succeeded"}
    only_first = await deliveries(client, acme.headers, message_id=first["id"])
    assert sorted(d["sequence"] for d in only_first) == [1, 2, 3]
    assert {d["message_id"] for d in only_first} == {first["id"]}
    assert {d["message_id"] for d in await deliveries(
        client, acme.headers, message_id=second["id"])} == {second["id"]}

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/webhook-deliveries", headers=acme.headers,
                                 params=params)).json()
        seen += [d["id"] for d in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [d["id"] for d in every]


@pytest.mark.parametrize("params", [
    {"status": "bogus"}, {"status": "PENDING"}, {"limit": 0}, {"limit": 1001},
    {"limit": "ten"}, {"cursor": "not-a-cursor"}, {"cursor": "whd_UPPER"},
    {"cursor": "whd_" + "a" * 40}, {"message_id": "m" * 41},
])
async def test_bad_query_parameters_are_refused(
        client: httpx.AsyncClient, acme: Tenant, params: dict[str, Any]) -> None:
    response = await client.get("/v1/webhook-deliveries", headers=acme.headers, params=params)
    assert_problem(response, 400, "validation_failed")
    assert response.json()["errors"]


ANSWER = "Thanks! Card 4111 1111 1111 1111 on file for +12025550173"  # an endpoint's words


async def test_the_endpoints_answer_is_kept_as_its_status_and_length_only(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    hooks.answer, hooks.status = ANSWER, 500
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    await one_inbound(client, rt, acme)
    await settle(rt, clock)

    [listed] = await deliveries(client, acme.headers)
    read = await client.get(f"/v1/webhook-deliveries/{listed['id']}", headers=acme.headers)
    assert read.status_code == 200, read.text
    [attempt] = read.json()["attempt_log"]
    assert (attempt["status_code"], attempt["response_bytes"]) == (500, len(ANSWER))
    assert "response_excerpt" not in attempt
    assert "4111" not in read.text
    assert "4111" not in str(await _webhook_rows(rt))


async def _webhook_rows(rt: Runtime) -> list[Any]:
    async with rt.db.core(tenant=SYSTEM, write=False) as session:
        return [list(row) for table in ("webhook_deliveries", "webhook_attempts")
                for row in await session.execute(text(f"SELECT * FROM {table}"))]


async def test_the_migration_removes_the_answers_kept_before(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    await one_inbound(client, rt, acme)
    await settle(rt, clock)
    config = alembic_config(rt.settings.resolved_migrate_database_url())
    await asyncio.to_thread(command.downgrade, config, "0010")
    await rt.db.system_engine.dispose()  # statements prepared for the schema before
    async with rt.db.core(tenant=SYSTEM) as session:  # an answer kept as it was before
        await session.execute(text("UPDATE webhook_attempts SET response_excerpt = :answer"),
                              {"answer": ANSWER})
    assert "4111" in str(await _webhook_rows(rt))

    await asyncio.to_thread(command.upgrade, config, "head")
    await rt.db.system_engine.dispose()
    rows = await _webhook_rows(rt)
    assert len(rows) == 2
    assert "4111" not in str(rows)
    database = sqlite_file(rt.settings.resolved_database_url())
    if database is not None:  # nor in the file's free pages
        await rt.db.engine.dispose()
        with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as plain:
            assert await _checkpoint_whole_log(plain)
        assert b"4111 1111" not in database.read_bytes()


async def _checkpoint_whole_log(plain: sqlite3.Connection) -> bool:
    """The runtime's checkpoint thread may be mid-pass: a TRUNCATE checkpoint then
    answers busy, and is tried again."""
    for _ in range(100):
        if plain.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_delivery_to_an_endpoint_busy_elsewhere_is_deferred_without_an_attempt(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, hooks: HookServer) -> None:
    """Another batch holds the endpoint's only slot: this batch hands the delivery back
    unsent, to be claimed again a second later, instead of waiting behind it."""
    rt.webhook_sender._slots = Slots(total=8, per_origin=1)
    hooks.answer_once_open = 2  # holds the first request until a second one comes
    held = asyncio.create_task(rt.webhook_sender.send(WebhookRequest(hooks.url, b"{}", {})))
    while not hooks.requests:
        await asyncio.sleep(0)
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    await one_inbound(client, rt, acme)
    await settle(rt, clock)

    [listed] = await deliveries(client, acme.headers)
    assert (listed["status"], listed["attempts"], listed["last_error"]) == ("pending", 0, None)
    assert len(hooks.requests) == 1
    # No loop has to poll for it: the worker that deferred it wakes one when it is due.
    await rt.wakeups.wait(DELIVER_JOB, 0)  # takes the nudge its creation left
    await asyncio.wait_for(rt.wakeups.wait(DELIVER_JOB, 3600), timeout=10)
    hooks.answer_once_open = 0
    hooks.release()
    assert (await held).ok

    await settle(rt, clock, seconds=1)
    done = await delivery(client, acme.headers, listed["id"])
    assert (done["status"], done["attempts"]) == ("succeeded", 1)
    assert len(hooks.requests) == 2
