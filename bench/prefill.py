"""A database that has seen a lot already: old, delivered messages written in bulk.

The long run of ``bench/smpp.py`` measures Tidings on a database holding a million
messages, where every index the send path touches is large; sending them through the
API would take hours on this machine. Here they go in with the bulk writer
(``tidings.storage.bulk.insert_many``), ten thousand a transaction, before the server starts:
each message with its ``delivered`` event, for the bench account, its destination
encrypted and blind-indexed with the tenant's keys like any other (a number of its own
for each, apart from the bench's destinations), its sender and body one ciphertext
shared by all. Jobs, webhook deliveries and audit events of those old messages are not
written: finished jobs are deleted anyway, and the run's own grow as it goes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from tidings.core.ids import new_id
from tidings.core.settings import Settings
from tidings.messaging.status_changes import EVENTS, MESSAGES
from tidings.storage.bulk import insert_many
from tidings.storage.db import SYSTEM, Database
from tidings.storage.vault import TenantKeys, Vault

FIRST_OLD_NUMBER = 12023000000  # +1 202 300 0000..: not among the bench's destinations
CHUNK = 10_000


def old_rows(keys: TenantKeys, tenant: str, numbers: Sequence[int], *, sender: bytes,
             body: bytes, when: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of delivered messages to ``+<FIRST_OLD_NUMBER + n>`` for each n of
    ``numbers``, and their ``delivered`` events."""
    messages, events = [], []
    for n in numbers:
        to = f"+{FIRST_OLD_NUMBER + n}"
        message_id = new_id("msg")
        messages.append({
            "id": message_id, "tenant_id": tenant, "direction": "outbound", "channel": "sms",
            "status": "delivered", "to_enc": keys.encrypt(to, field="messages.to"),
            "to_index": keys.blind_index(to, field="messages.to"), "from_enc": sender,
            "body_enc": body, "encoding": "GSM-7", "num_segments": 1,
            "status_callback": None, "send_at": None, "expires_at": None,
            "connector": "smsc", "carrier_message_id": f"old-{n}", "error_code": None,
            "smpp_receipt_to": None, "fallback_channels": None, "fallback_after": None,
            "content_enc": None, "event_count": 1, "created_at": when, "updated_at": when})
        events.append({"tenant_id": tenant, "message_id": message_id, "seq": 1,
                       "status": "delivered", "applied": True, "source": "carrier",
                       "error_code": None, "connector": "smsc", "created_at": when})
    return messages, events


async def _analyze(database: Database) -> None:
    """The planner's statistics of the tables just filled, as a database that grew over
    months has them (PostgreSQL's autovacuum would gather them a minute later; a bench
    run that starts at once would otherwise be planned for empty tables)."""
    async with database.core(tenant=SYSTEM) as conn:
        await conn.execute(text("ANALYZE messages"))
        await conn.execute(text("ANALYZE message_events"))


async def prefill(settings: Settings, tenant: str, count: int) -> float:
    """Writes ``count`` old delivered messages for ``tenant``; the seconds it took."""
    if count < 0:
        raise ValueError(f"cannot pre-fill {count} messages")
    if count == 0:
        return 0.0
    started = time.perf_counter()
    vault, database = await Vault.open(settings), Database(settings.database_url)
    try:
        keys = await vault.keys_for(tenant)
        sender = keys.encrypt("Bench", field="messages.from")
        body = keys.encrypt("Hello", field="messages.body")
        when = datetime.now(UTC) - timedelta(days=1)
        for first in range(0, count, CHUNK):
            messages, events = old_rows(keys, tenant, range(first, min(first + CHUNK, count)),
                                        sender=sender, body=body, when=when)
            async with database.core(tenant=tenant) as conn:
                await insert_many(conn, MESSAGES, messages)
                await insert_many(conn, EVENTS, events)
        await _analyze(database)
    finally:
        await database.dispose()
        await vault.close()
    return time.perf_counter() - started
