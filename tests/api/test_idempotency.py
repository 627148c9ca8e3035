"""Idempotency-Key records: what they keep at rest, and the batch endpoint honouring them.

The single send's replay and conflict behaviour is tested in ``test_messages.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
import orjson
from sqlalchemy import select, update

from tests.conftest import Tenant, assert_problem, settle, stored_counts
from tidings.audit.models import AuditEvent
from tidings.core.clock import FakeClock
from tidings.messaging import idempotency
from tidings.messaging.idempotency import key_legacy_fingerprints
from tidings.messaging.models import IdempotencyKey
from tidings.messaging.schemas import SendMessage
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

MESSAGES = "/v1/messages"
BATCH = "/v1/messages/batch"
NUMBER = "+12025550173"


def single(body: str = "Your code is 1234") -> dict[str, Any]:
    return {"to": NUMBER, "from": "Acme", "body": body}


def batch(body: str = "Hi {name}") -> dict[str, Any]:
    return {"from": "Acme", "body": body, "recipients": [
        {"to": NUMBER, "variables": {"name": "Ada"}},
        {"to": "not a number"},
        {"to": "+12025550174", "variables": {"name": "Grace"}}]}


def plain_digests(payload: dict[str, Any]) -> set[str]:
    """Every unkeyed SHA-256 of the request a copy of the database could be matched to."""
    dumped = SendMessage.model_validate(payload).model_dump(mode="json", by_alias=True)
    return {hashlib.sha256(orjson.dumps(form, option=orjson.OPT_SORT_KEYS)).hexdigest()
            for form in (dumped, payload)} | {
        hashlib.sha256(orjson.dumps(payload)).hexdigest()}


async def records(rt: Runtime) -> dict[tuple[str, str], IdempotencyKey]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = (await session.scalars(select(IdempotencyKey))).all()
    return {(r.tenant_id, r.key): r for r in rows}


async def post(client: httpx.AsyncClient, path: str, tenant: Tenant, key: str,
               payload: dict[str, Any]) -> httpx.Response:
    return await client.post(path, headers={**tenant.headers, "Idempotency-Key": key},
                             json=payload)


# --------------------------------------------------------------------------- at rest


async def test_the_stored_fingerprint_cannot_be_recomputed_from_the_request(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    for tenant in (acme, globex):
        response = await post(client, MESSAGES, tenant, "order-1", single())
        assert response.status_code == 201, response.text
    stored = await records(rt)
    acme_hash = stored[(acme.id, "order-1")].request_hash
    globex_hash = stored[(globex.id, "order-1")].request_hash
    assert acme_hash not in plain_digests(single())
    assert globex_hash not in plain_digests(single())
    assert acme_hash != globex_hash  # the same request, another tenant's key
    assert {r.keyed for r in stored.values()} == {True}

    # Keyed, yet the same key and body still replay and another body is refused.
    again = await post(client, MESSAGES, acme, "order-1", single())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert_problem(await post(client, MESSAGES, acme, "order-1", single("Your code is 1235")),
                   409, "idempotency_key_reused")


async def test_fingerprints_stored_before_keying_are_keyed_and_still_replay(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    first = await post(client, MESSAGES, acme, "old-1", single())
    assert first.status_code == 201, first.text
    dumped = SendMessage.model_validate(single()).model_dump(mode="json", by_alias=True)
    legacy = hashlib.sha256(orjson.dumps(dumped, option=orjson.OPT_SORT_KEYS)).hexdigest()
    async with rt.db.transaction(tenant=SYSTEM) as session:  # a record as it was stored before
        await session.execute(update(IdempotencyKey).values(request_hash=legacy, keyed=False))

    assert await key_legacy_fingerprints(rt.db, rt.vault) == 1
    assert await key_legacy_fingerprints(rt.db, rt.vault) == 0
    record = (await records(rt))[(acme.id, "old-1")]
    assert (record.keyed, record.request_hash != legacy) == (True, True)
    again = await post(client, MESSAGES, acme, "old-1", single())
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert_problem(await post(client, MESSAGES, acme, "old-1", single("other")),
                   409, "idempotency_key_reused")


# --------------------------------------------------------------------------- batch


async def audit_count(rt: Runtime) -> int:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return len((await session.scalars(select(AuditEvent.id))).all())


async def test_a_batch_replayed_with_its_key_answers_the_same_and_stores_nothing(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    first = await post(client, BATCH, acme, "batch-1", batch())
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    assert (first.json()["accepted"], first.json()["rejected"]) == (2, 1)
    await settle(rt, clock)
    before, audited = await stored_counts(rt), await audit_count(rt)
    assert (before["messages"], before["idempotency_keys"]) == (2, 1)

    again = await post(client, BATCH, acme, "batch-1", batch())
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert await stored_counts(rt) == before  # no message, job or webhook more
    assert await audit_count(rt) == audited

    # The answer is stored encrypted: no number of the batch in clear.
    record = (await records(rt))[(acme.id, "batch-1")]
    assert record.message_id is None
    assert record.response_enc is not None
    assert b"2025550173" not in record.response_enc
    assert b"Ada" not in record.response_enc


async def test_a_batch_key_with_another_body_or_endpoint_is_refused(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    assert (await post(client, BATCH, acme, "batch-2", batch())).status_code == 200
    before = await stored_counts(rt)
    assert_problem(await post(client, BATCH, acme, "batch-2", batch("Hello {name}")),
                   409, "idempotency_key_reused")
    assert_problem(await post(client, MESSAGES, acme, "batch-2", single()),
                   409, "idempotency_key_reused")
    assert await stored_counts(rt) == before
    # A single send's key is not a batch's either; another tenant's key is its own.
    assert (await post(client, MESSAGES, acme, "single-2", single())).status_code == 201
    assert_problem(await post(client, BATCH, acme, "single-2", batch()),
                   409, "idempotency_key_reused")
    other = await post(client, BATCH, globex, "batch-2", batch())
    assert other.status_code == 200
    assert "idempotent-replayed" not in other.headers


async def test_a_bad_batch_under_a_key_stores_no_record(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    before = await stored_counts(rt)
    response = await post(client, BATCH, acme, "batch-3",
                          {**batch(), "channel": "email", "from": "news@acme.test"})
    assert_problem(response, 400, "channel_unavailable")
    assert await stored_counts(rt) == before
    # The key is still free for a good request.
    assert (await post(client, BATCH, acme, "batch-3", batch())).status_code == 200


async def test_a_concurrent_double_submit_stores_one_batch(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    first, second = await asyncio.gather(post(client, BATCH, acme, "batch-4", batch()),
                                         post(client, BATCH, acme, "batch-4", batch()))
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json() == second.json()
    assert sorted(r.headers.get("Idempotent-Replayed", "") for r in (first, second)) == [
        "", "true"]
    stored = await stored_counts(rt)
    assert (stored["messages"], stored["idempotency_keys"]) == (2, 1)


async def test_records_are_kept_for_a_day_then_pruned(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    headers = {**acme.headers, "Idempotency-Key": "day-old"}
    first = await client.post(BATCH, headers=headers, json=batch())
    clock.advance(12 * 3600)
    fresh = await client.post(BATCH, headers={**acme.headers, "Idempotency-Key": "fresh"},
                              json=batch("Bye {name}"))
    assert (first.status_code, fresh.status_code) == (200, 200)
    clock.advance(12 * 3600 + 1)
    assert await idempotency.prune(rt.db, now=clock.now()) == 1
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        kept = (await session.scalars(select(IdempotencyKey.key))).all()
    assert kept == ["fresh"]
    replayed = await client.post(BATCH, headers={**acme.headers, "Idempotency-Key": "fresh"},
                                 json=batch("Bye {name}"))
    assert replayed.headers["Idempotent-Replayed"] == "true"
