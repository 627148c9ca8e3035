"""Counting one day of the platform's messages into buckets of channel, direction and
country, with the number of distinct people in each (RET-3).

**When a day is counted.** Once, when it has been over for ``TIDINGS_STATS_SETTLE_DAYS``
(3 by default, so that late delivery reports are in), and never again. Retention may
have anonymised some of the day's messages by then: an account may keep messages for
as little as a day (``TIDINGS_MESSAGE_RETENTION_MIN_DAYS``), so there is no moment at
which a closed day is certain to be whole. So the builder reads what retention leaves:
an anonymised message's country is its ``subject_country``. The other way (count each
day as soon as it ends and count it again as its reports arrive) was not taken: two
versions of one day, published one after the other, can be subtracted from each other,
and their difference can be a bucket that k kept hidden.

**Country.** Of the person's number (the recipient of an outbound message, the sender
of an inbound one), decrypted here with the account's keys, as retention does, once per
person per account and day (people are known by their blind index within an account);
or ``subject_country`` once anonymised. NULL for e-mail addresses, numbers of no single
country, and messages whose person was erased (nothing is left to read).

**People, a lower bound.** A bucket's ``subjects`` must never count more people than it
holds, or k would show a bucket of fewer than k people. The same person in two accounts
has two blind indexes and two keys, so neither is counted across accounts; each person
decrypted is counted by a token of their address instead (``people.Tokens``: one token
for one address in every account, for this build only, never stored), and the bucket
counts the distinct tokens. A message whose person can no longer be told (anonymised,
erased) adds no one, except that a bucket with messages has at least one person. A
token collision merges two people: the count only falls. So an account whose messages
are anonymised before the day is counted makes its buckets look smaller than they are,
and they are hidden sooner: the safe side.

**Work.** Account by account, ``CHUNK`` messages a read-only transaction through the
``(tenant_id, id)`` index, the decrypting and counting on a thread so that the event
loop (the send path's, where the workers run) is never held for more than a slice of
it. Nothing is written here: ``service.store_day`` writes the day in one transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select

from tidings.accounts.models import Account
from tidings.core.services import Services
from tidings.messaging.models import Message
from tidings.messaging.stats import FAILED
from tidings.storage.ciphers import FieldCipher, TenantKeys, VaultError
from tidings.storage.db import SYSTEM
from tidings.usage_stats.days import id_range
from tidings.usage_stats.people import Tokens, clean_country, country_of, subject_ciphers

__all__ = ["CHUNK", "Bucket", "BucketKey", "count_day"]

CHUNK = 500  # rows a read: on SQLite the read runs on the event loop, ~12 µs a row
BucketKey = tuple[str, str, str | None]  # channel, direction, country
_FAILED = frozenset(str(status) for status in FAILED)
_COLUMNS = (Message.id, Message.direction, Message.channel, Message.status,
            Message.num_segments, Message.to_index, Message.from_index, Message.to_enc,
            Message.from_enc, Message.subject_key, Message.anonymised_at,
            Message.subject_country)
Person = tuple[str | None, int]  # country, token


@dataclass
class Bucket:
    """Counts of one bucket as they build up; ``people`` are this build's tokens."""

    messages: int = 0
    segments: int = 0
    delivered: int = 0
    failed: int = 0
    people: set[int] = field(default_factory=set)

    @property
    def subjects(self) -> int:
        """Distinct people, a lower bound: at least one where there are messages."""
        return max(len(self.people), 1) if self.messages else 0


async def count_day(rt: Services, day: date) -> dict[BucketKey, Bucket]:
    """Every account's messages of ``day`` (UTC), counted into buckets."""
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        accounts = (await session.scalars(select(Account.id).order_by(Account.id))).all()
    buckets: dict[BucketKey, Bucket] = {}
    tokens = Tokens()
    for tenant in accounts:
        await _count_account(rt, tenant, day, buckets, tokens)
    return buckets


async def _count_account(rt: Services, tenant: str, day: date,
                         buckets: dict[BucketKey, Bucket], tokens: Tokens) -> None:
    first, after = id_range(day)
    known: dict[str, Person] = {}  # the account's people of the day, by blind index
    keys: TenantKeys | None = None
    last: str | None = None
    while True:
        position = Message.id > last if last is not None else Message.id >= first
        async with rt.db.core(tenant=tenant, write=False) as conn:
            rows = (await conn.execute(select(*_COLUMNS).where(
                Message.tenant_id == tenant, position, Message.id < after,
            ).order_by(Message.id).limit(CHUNK))).all()
        if not rows:
            return
        unread = [row for row in rows if _needs_reading(row, known)]
        ciphers: dict[str, FieldCipher | None] = {}
        if unread:
            keys = keys or await rt.vault.keys_for(tenant)
            ciphers = await _ciphers(rt, keys, unread)
        await asyncio.to_thread(tally, rows, ciphers, known, buckets, tokens)
        if len(rows) < CHUNK:
            return
        last = rows[-1].id


def _person_index(row: Any) -> str | None:
    index: str | None = row.to_index if row.direction == "outbound" else row.from_index
    return index or None


def _sealed_address(row: Any) -> bytes | None:
    blob: bytes | None = row.to_enc if row.direction == "outbound" else row.from_enc
    return blob or None  # empty: erased or anonymised


def _needs_reading(row: Any, known: dict[str, Person]) -> bool:
    if row.anonymised_at is not None or _sealed_address(row) is None:
        return False
    index = _person_index(row)
    return index is None or index not in known


async def _ciphers(rt: Services, keys: TenantKeys,
                   rows: Sequence[Any]) -> dict[str, FieldCipher | None]:
    """Each row's cipher: its person's key, the account's data key for a row from before
    subject keys, None for a person erased meanwhile. One person's first row is enough."""
    firsts: dict[str, Any] = {}
    for row in rows:
        firsts.setdefault(_person_index(row) or row.id, row)
    found = await subject_ciphers(rt.vault, keys, {
        row.subject_key for row in firsts.values() if row.subject_key is not None})
    return {row.id: keys if row.subject_key is None else found.get(row.subject_key)
            for row in firsts.values()}


def tally(rows: Sequence[Any], ciphers: dict[str, FieldCipher | None],
          known: dict[str, Person], buckets: dict[BucketKey, Bucket], tokens: Tokens) -> None:
    """Add ``rows`` to ``buckets``; run on a thread (it decrypts and parses numbers)."""
    for row in rows:
        country, token = _describe(row, ciphers, known, tokens)
        bucket = buckets.get((row.channel, row.direction, country))
        if bucket is None:
            bucket = buckets[(row.channel, row.direction, country)] = Bucket()
        bucket.messages += 1
        bucket.segments += row.num_segments or 0
        if row.status == "delivered":
            bucket.delivered += 1
        elif row.status in _FAILED:
            bucket.failed += 1
        if token is not None:
            bucket.people.add(token)


def _describe(row: Any, ciphers: dict[str, FieldCipher | None], known: dict[str, Person],
              tokens: Tokens) -> tuple[str | None, int | None]:
    """The row's country and its person's token (None: the person cannot be told)."""
    if row.anonymised_at is not None:
        return clean_country(row.subject_country), None
    index = _person_index(row)
    if index is not None and index in known:
        return known[index]
    address = _address(row, ciphers.get(row.id))
    if address is None:
        return None, None
    person = (country_of(address), tokens.of(address))
    if index is not None:
        known[index] = person
    return person


def _address(row: Any, cipher: FieldCipher | None) -> str | None:
    blob = _sealed_address(row)
    if cipher is None or blob is None:
        return None
    column = "messages.to" if row.direction == "outbound" else "messages.from"
    try:
        return cipher.decrypt(blob, field=column)
    except VaultError:
        return None
