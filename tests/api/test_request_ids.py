"""Request ids: taken from X-Request-Id when well formed (else made), returned, on the
request's log lines, and carried by the jobs it queues onto the worker's log lines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from structlog.contextvars import get_contextvars, merge_contextvars
from structlog.testing import capture_logs

from tests.conftest import Tenant, assert_problem, make_tenant
from tidings.core.logs import add_request_id, get_logger
from tidings.jobs.outbox import ClaimedJob, Job
from tidings.jobs.workers import Worker, WorkerPool
from tidings.messaging.status_changes import DISPATCH_JOB
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.webhooks.service import DELIVER_JOB

SEND = {"to": "+12025550173", "from": "Acme", "body": "Hello", "channel": "sms"}
GIVEN = "4b1c0a86-2f1e-4d6b-9d1e-5c7f0e3a2b19"
log = get_logger("tests.request_ids")


async def job_payloads(rt: Runtime) -> dict[str, list[Any]]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = (await session.execute(select(Job.kind, Job.payload))).all()
    found: dict[str, list[Any]] = {}
    for kind, payload in rows:
        found.setdefault(kind, []).append(payload)
    return found


async def test_a_well_formed_id_is_returned_logged_and_kept_with_the_jobs(
        client: httpx.AsyncClient, rt: Runtime, hooks: Any) -> None:
    acme = await make_tenant(rt, "Acme", webhook_url=hooks.url)
    with capture_logs(processors=[merge_contextvars, add_request_id]) as logged:
        sent = await client.post("/v1/messages", headers={**acme.headers,
                                                           "X-Request-Id": GIVEN}, json=SEND)
    assert sent.status_code == 201, sent.text
    assert sent.headers["X-Request-Id"] == GIVEN
    [access] = [e for e in logged if e["event"] == "request"]
    assert access["request_id"] == GIVEN
    payloads = await job_payloads(rt)
    assert payloads[DISPATCH_JOB] == [{"request_id": GIVEN}]
    assert payloads[DELIVER_JOB] == [{"request_id": GIVEN}]


async def test_the_id_reaches_log_lines_without_structlogs_context(
        client: httpx.AsyncClient, acme: Tenant) -> None:
    """The configured processor adds it: a request binds one context variable, not
    structlog's context too (a dictionary of tokens per request on the send path)."""
    with capture_logs(processors=[add_request_id]) as logged:
        sent = await client.post("/v1/messages", headers={**acme.headers,
                                                           "X-Request-Id": GIVEN}, json=SEND)
    assert sent.status_code == 201, sent.text
    assert [e["request_id"] for e in logged if e["event"] == "request"] == [GIVEN]
    with capture_logs(processors=[merge_contextvars]) as logged:
        sent = await client.post("/v1/messages", headers=acme.headers, json=SEND)
    assert sent.status_code == 201, sent.text
    assert [e.get("request_id") for e in logged if e["event"] == "request"] == [None]


@pytest.mark.parametrize("headers", [
    {}, {"X-Request-Id": "has spaces in it"}, {"X-Request-Id": "x" * 129},
    {"X-Request-Id": "-starts-with-a-dash"}, {"X-Request-Id": "naïve".encode()},
])
async def test_a_missing_or_malformed_id_is_replaced_by_a_new_one(
        client: httpx.AsyncClient, acme: Tenant, headers: dict[str, str | bytes]) -> None:
    with capture_logs(processors=[merge_contextvars, add_request_id]) as logged:
        answer = await client.get("/v1/messages", headers={**acme.headers, **headers})
    assert answer.status_code == 200
    made = answer.headers["X-Request-Id"]
    assert made.startswith("req_")
    assert made != headers.get("X-Request-Id")
    assert [e["request_id"] for e in logged if e["event"] == "request"] == [made]


async def test_two_ids_are_one_too_many_and_errors_carry_the_id_too(
        client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/messages", headers=[("X-Request-Id", "a1"),
                                                       ("X-Request-Id", "b2")])
    assert_problem(answer, 401, "missing_api_key")
    assert answer.headers["X-Request-Id"].startswith("req_")
    assert answer.headers.get_list("X-Request-Id") == [answer.headers["X-Request-Id"]]


async def test_worker_log_lines_about_a_batch_name_its_requests(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    for request_id in ("first-request", "second-request"):
        sent = await client.post("/v1/messages", json=SEND,
                                 headers={**acme.headers, "X-Request-Id": request_id})
        assert sent.status_code == 201, sent.text
    handled: list[int] = []

    async def failing_dispatch(_rt: Runtime, jobs: Sequence[ClaimedJob]) -> None:
        handled.append(len(jobs))
        log.warning("dispatch_trouble")  # any line the handler (or its tasks) logs
        raise RuntimeError("the carrier is on fire")

    pool = WorkerPool(rt, [Worker(DISPATCH_JOB, failing_dispatch, 100)])
    with capture_logs(processors=[merge_contextvars, add_request_id]) as logged:
        pool.start()
        try:
            deadline = time.monotonic() + 10
            while not any(e["event"] == "worker_batch_failed" for e in logged):
                assert time.monotonic() < deadline, "the batch never failed"
                await asyncio.sleep(0.01)
        finally:
            await pool.stop()
    assert handled[0] == 2
    for event in ("dispatch_trouble", "worker_batch_failed"):
        line = next(e for e in logged if e["event"] == event)
        assert sorted(line["request_ids"]) == ["first-request", "second-request"], event
    assert "request_ids" not in get_contextvars()
