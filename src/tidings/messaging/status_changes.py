"""Apply status reports to messages: forward-only moves, every report an event.

The workers move hundreds of messages per transaction, so this works on plain
rows (``MessageState``) read and written with Core statements, not on ORM
objects: one SELECT to load a batch, one UPDATE executed for many rows to
store it, one INSERT for its events and one for its webhooks.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, select, update

from tidings.jobs.outbox import enqueue_rows, job_row
from tidings.messaging.lifecycle import can_move, is_final
from tidings.messaging.models import Message, MessageEvent
from tidings.storage.bulk import execute_many, insert_many
from tidings.storage.db import SessionOrConnection
from tidings.webhooks.service import DELIVER_JOB, STATUS_EVENT, WebhookBatch
from tidings.webhooks.subscriptions import NO_SUBSCRIPTION, Subscription

MESSAGES = cast(Table, Message.__table__)
EVENTS = cast(Table, MessageEvent.__table__)
DISPATCH_JOB = "message.dispatch"
SMPP_DELIVER_JOB = "smpp.deliver"  # a deliver_sm to a client bound to our SMPP server
_WRITTEN = ("status", "event_count", "error_code", "connector", "carrier_message_id",
            "updated_at", "channel", "fallback_channels")
FALLBACK_JOB = "message.fallback"  # not delivered in time: try the next channel
# Outcomes after which a message with channels left tries the next one.
FALLS_BACK_ON = frozenset({"rejected", "failed", "undelivered"})


@dataclass(slots=True)
class MessageState:
    """The columns a status change reads or writes (ciphertexts only when asked for)."""

    id: str
    tenant_id: str
    channel: str
    status: str
    encoding: str
    num_segments: int
    status_callback: str | None
    expires_at: datetime | None
    connector: str | None
    carrier_message_id: str | None
    error_code: str | None
    smpp_receipt_to: str | None
    fallback_channels: str | None  # channels still to try, comma-separated
    fallback_after: int | None  # seconds after sent without delivery before the next one
    event_count: int
    created_at: datetime
    updated_at: datetime
    to_enc: bytes | None = None
    from_enc: bytes | None = None
    body_enc: bytes | None = None
    content_enc: bytes | None = None
    subject_key: str | None = None  # whose key the ciphertexts are under (with them)
    to_index: str | None = None  # the recipient's blind index (with them): restriction
    loaded_carrier_key: tuple[str | None, str | None] = field(init=False)

    def __post_init__(self) -> None:
        self.loaded_carrier_key = (self.connector, self.carrier_message_id)

    @property
    def carrier_key_changed(self) -> bool:
        return (self.connector, self.carrier_message_id) != self.loaded_carrier_key


# The columns in the order of MessageState's fields (the ciphertexts, optional, come
# last): rows become states by position, cheaper than by name.
_COLUMNS = tuple(f.name for f in fields(MessageState) if f.init)
_CONTENT_COLUMNS = tuple(name for name in _COLUMNS
                         if name.endswith("_enc") or name in ("subject_key", "to_index"))
_STATE_COLUMNS = tuple(name for name in _COLUMNS if name not in _CONTENT_COLUMNS)


async def load_states(session: SessionOrConnection, condition: ColumnElement[bool], *,
                      content: bool = False) -> list[MessageState]:
    """Messages matching ``condition``; with ``content``, their ciphertexts too."""
    names = _STATE_COLUMNS + (_CONTENT_COLUMNS if content else ())
    rows = await session.execute(select(*(MESSAGES.c[n] for n in names)).where(condition))
    return [MessageState(*row) for row in rows]


async def load_states_by_id(session: SessionOrConnection, ids: Sequence[str], *,
                            content: bool = False) -> dict[str, MessageState]:
    states = await load_states(session, MESSAGES.c.id.in_(list(ids)), content=content)
    return {state.id: state for state in states}


class _Store:
    """One UPDATE for many messages, of the columns in ``written``."""

    def __init__(self, written: tuple[str, ...]) -> None:
        self.keys = tuple(f"new_{name}" for name in written)
        self.values_of = operator.attrgetter(*written)
        self.statement = (
            update(MESSAGES).where(MESSAGES.c.id == bindparam("state_id"))
            .values({name: bindparam(f"new_{name}", type_=MESSAGES.c[name].type)
                     for name in written}))

    def params(self, messages: Sequence[MessageState]) -> list[dict[str, Any]]:
        return [{"state_id": m.id, **dict(zip(self.keys, self.values_of(m), strict=True))}
                for m in messages]


# A status change that keeps the carrier key (a receipt, say) leaves its two indexed
# columns out of the UPDATE: SQLite rewrites an index entry for every indexed column
# in the SET list, changed or not, which cost 4x a plain update in a measure of 20,000.
_CARRIER_KEY = ("connector", "carrier_message_id")
_STORE_ALL = _Store(_WRITTEN)
_STORE_KEPT_KEY = _Store(tuple(n for n in _WRITTEN if n not in _CARRIER_KEY))


@dataclass
class StatusChanges:
    """Status reports applied to loaded messages, with their events and webhooks."""

    now: datetime
    webhooks_of: dict[str, Subscription]  # tenant -> its account's webhook subscription
    events: list[dict[str, Any]] = field(default_factory=list)
    webhooks: WebhookBatch = field(default_factory=WebhookBatch.empty)
    moved: Counter[str] = field(default_factory=Counter)  # applied changes, by new status
    jobs: list[dict[str, Any]] = field(default_factory=list)  # SMPP receipts, fallbacks
    _touched: dict[str, MessageState] = field(default_factory=dict)

    def report(self, message: MessageState, status: str, *, source: str,
               error_code: str | None = None, connector: str | None = None) -> bool:
        """Record the report; move the message only forward. True when it moved.

        A failure of a message with channels left is kept as an event and the
        message starts again on its next channel (``fall_back``).
        """
        if (status in FALLS_BACK_ON and message.fallback_channels
                and can_move(message.status, status)):
            self.note(message, status, source=source, error_code=error_code,
                      connector=connector)
            self.fall_back(message)
            return True
        applied = can_move(message.status, status)
        self.note(message, status, source=source, error_code=error_code, applied=applied,
                  connector=connector)
        if applied:
            self.moved[status] += 1
            message.status, message.updated_at = status, self.now
            message.error_code = error_code or message.error_code
            self._post(message, status)
            self._follow_up(message, status)
        return applied

    def fall_back(self, message: MessageState) -> None:
        """Queue the message again on its next channel: the one exception to forward-only
        moves, a new attempt whose history keeps every earlier one."""
        channel, *rest = (message.fallback_channels or "").split(",")
        message.channel, message.fallback_channels = channel, ",".join(rest) or None
        message.connector = message.carrier_message_id = None
        message.status, message.updated_at = "queued", self.now
        self.note(message, "queued", source=f"fallback:{channel}", applied=True)
        self.moved["queued"] += 1
        self.jobs.append(job_row(tenant=message.tenant_id, kind=DISPATCH_JOB,
                                 ref_id=message.id, now=self.now))
        self._post(message, "queued")

    def _post(self, message: MessageState, status: str) -> None:
        """The webhooks of the change just noted, if its account wants that status."""
        wanted = self.webhooks_of.get(message.tenant_id, NO_SUBSCRIPTION)
        self.webhooks.add(tenant=message.tenant_id, message_id=message.id,
                          sequence=message.event_count, event_type=STATUS_EVENT,
                          urls=wanted.urls_for(status, message.status_callback), now=self.now)

    def _follow_up(self, message: MessageState, status: str) -> None:
        if message.smpp_receipt_to and is_final(status):
            self.jobs.append(job_row(
                tenant=message.tenant_id, kind=SMPP_DELIVER_JOB, ref_id=message.id,
                now=self.now, payload={"type": "receipt", "seq": message.event_count}))
        if status == "sent" and message.fallback_channels and message.fallback_after:
            self.jobs.append(job_row(
                tenant=message.tenant_id, kind=FALLBACK_JOB, ref_id=message.id, now=self.now,
                run_at=self.now + timedelta(seconds=message.fallback_after),
                payload={"channel": message.channel}))

    def note(self, message: MessageState, status: str, *, source: str,
             error_code: str | None = None, applied: bool = False,
             connector: str | None = None) -> None:
        """Add an event to the message's history (by itself: one that changes nothing)."""
        message.event_count += 1
        self._touched[message.id] = message
        self.events.append({"tenant_id": message.tenant_id, "message_id": message.id,
                            "seq": message.event_count, "status": status, "applied": applied,
                            "source": source, "error_code": error_code,
                            "connector": connector, "created_at": self.now})

    async def flush(self, session: SessionOrConnection) -> tuple[str, ...]:
        """Write the messages, their events, webhooks and SMPP receipts; the job kinds
        queued, to wake after the commit."""
        if self._touched:
            by_store: dict[_Store, list[MessageState]] = {_STORE_ALL: [], _STORE_KEPT_KEY: []}
            for m in self._touched.values():
                by_store[_STORE_ALL if m.carrier_key_changed else _STORE_KEPT_KEY].append(m)
            for store, messages in by_store.items():
                if messages:
                    await execute_many(session, store.statement, store.params(messages))
            self._touched = {}
        if self.events:
            await insert_many(session, EVENTS, self.events)
            self.events = []
        woken = tuple(sorted({job["kind"] for job in self.jobs}))
        if self.jobs:
            await enqueue_rows(session, self.jobs)
            self.jobs = []
        if await self.webhooks.flush(session):
            woken += (DELIVER_JOB,)
        return woken
