"""Status changes on plain rows: what a flush stores, and which columns its UPDATE sets.

A change that keeps the carrier key (a receipt) leaves ``connector`` and
``carrier_message_id`` out of the UPDATE, so SQLite does not rewrite their index
entry; a change of the key (sent, a channel fallback) stores it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import event, select

from tests.conftest import Tenant
from tidings.messaging.status_changes import (
    MESSAGES,
    MessageState,
    StatusChanges,
    load_states_by_id,
)
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM


async def _queued_message(rt: Runtime, client: httpx.AsyncClient, acme: Tenant) -> str:
    send_at = rt.clock.now() + timedelta(days=30)  # scheduled: no worker touches it
    response = await client.post("/v1/messages", headers=acme.headers, json={
        "to": "+12025550173", "from": "Acme", "body": "Hi", "channel": "sms",
        "send_at": send_at.isoformat()})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@contextmanager
def _updates_of_messages(rt: Runtime) -> Iterator[list[str]]:
    """The SQL of every UPDATE of ``messages`` run meanwhile."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE MESSAGES"):
            seen.append(statement)

    engine = rt.db.engine_for(SYSTEM).sync_engine  # where ``_apply`` runs
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def _apply(rt: Runtime, message_id: str, change: Any) -> None:
    async with rt.db.core(tenant=SYSTEM) as conn:
        message = (await load_states_by_id(conn, [message_id]))[message_id]
        changes = StatusChanges(rt.clock.now(), {})
        change(changes, message)
        await changes.flush(conn)


async def _stored_key(rt: Runtime, message_id: str) -> tuple[str, str | None, str | None]:
    async with rt.db.core(tenant=SYSTEM, write=False) as conn:
        row = (await conn.execute(
            select(MESSAGES.c.status, MESSAGES.c.connector, MESSAGES.c.carrier_message_id)
            .where(MESSAGES.c.id == message_id))).one()
    return row[0], row[1], row[2]


def _sent(changes: StatusChanges, message: MessageState) -> None:
    message.connector, message.carrier_message_id = "smsc", "carrier-1"
    changes.report(message, "sent", source="dispatcher", connector="smsc")


def _delivered(changes: StatusChanges, message: MessageState) -> None:
    changes.report(message, "delivered", source="carrier", connector="smsc")


async def test_sent_stores_the_carrier_key_and_a_receipt_keeps_it(
        rt: Runtime, client: httpx.AsyncClient, acme: Tenant) -> None:
    message_id = await _queued_message(rt, client, acme)
    await _apply(rt, message_id, lambda changes, m: changes.report(
        m, "queued", source="scheduler"))

    with _updates_of_messages(rt) as updates:
        await _apply(rt, message_id, _sent)
    assert await _stored_key(rt, message_id) == ("sent", "smsc", "carrier-1")
    assert [("carrier_message_id" in sql) for sql in updates] == [True]

    with _updates_of_messages(rt) as updates:
        await _apply(rt, message_id, _delivered)
    assert await _stored_key(rt, message_id) == ("delivered", "smsc", "carrier-1")
    assert updates
    assert not any("carrier_message_id" in sql or "connector" in sql for sql in updates)


async def test_a_fallback_clears_the_carrier_key(
        rt: Runtime, client: httpx.AsyncClient, acme: Tenant) -> None:
    message_id = await _queued_message(rt, client, acme)
    await _apply(rt, message_id, lambda changes, m: changes.report(
        m, "queued", source="scheduler"))
    await _apply(rt, message_id, _sent)

    def fall_back(changes: StatusChanges, message: MessageState) -> None:
        message.fallback_channels = "email"
        changes.fall_back(message)

    await _apply(rt, message_id, fall_back)
    assert await _stored_key(rt, message_id) == ("queued", None, None)


async def test_one_flush_stores_changed_and_kept_keys_together(
        rt: Runtime, client: httpx.AsyncClient, acme: Tenant) -> None:
    first = await _queued_message(rt, client, acme)
    second = await _queued_message(rt, client, acme)
    for message_id in (first, second):
        await _apply(rt, message_id, lambda changes, m: changes.report(
            m, "queued", source="scheduler"))
    await _apply(rt, first, _sent)

    async with rt.db.core(tenant=SYSTEM) as conn:
        messages = await load_states_by_id(conn, [first, second])
        changes = StatusChanges(rt.clock.now(), {})
        _delivered(changes, messages[first])  # keeps its key
        messages[second].connector, messages[second].carrier_message_id = "smsc", "carrier-2"
        changes.report(messages[second], "sent", source="dispatcher", connector="smsc")
        await changes.flush(conn)

    assert await _stored_key(rt, first) == ("delivered", "smsc", "carrier-1")
    assert await _stored_key(rt, second) == ("sent", "smsc", "carrier-2")
