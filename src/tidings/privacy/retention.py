"""Message retention (RET-2): after the account's period, a message keeps only what
statistics need.

Once a message is older than the account's ``message_body_days`` (the operator's
default, ``TIDINGS_MESSAGE_RETENTION_DAYS``, or the account's own choice within the
operator's limits), it is anonymised: body, content, sender and recipient emptied, no
blind index left, the person's number reduced to its country and number type
(``US``, ``mobile``), its times cut to the day. A person's key is destroyed, with an
entry in the erasure ledger, once no message under it is left to anonymise: backups
of their old messages can no longer be read.

The job goes through an account's messages in id order (ids follow time) from where
its last run stopped, a thousand a transaction, and stops at the first message still
within the period; a rerun finds nothing to do. Each run leaves a report
(``RetentionRun``). The workers run it for each account once a day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Account, AccountStatus
from tidings.audit.service import SYSTEM_ACTOR, Actor, actor_label, audit_row, record
from tidings.consents.service import subject_keys_in_use
from tidings.core.ids import new_id
from tidings.core.logs import get_logger
from tidings.core.services import Services
from tidings.core.settings import Settings
from tidings.messaging.models import Message
from tidings.privacy.models import RetentionPolicy, RetentionRun
from tidings.storage.ciphers import FieldCipher, VaultError
from tidings.storage.db import SYSTEM
from tidings.storage.subject_keys import ciphers_of
from tidings.web.errors import InvalidRequest

__all__ = ["Limits", "RunReport", "apply_retention", "due_accounts", "limits_of",
           "message_body_days", "set_message_body_days"]

log = get_logger("tidings.privacy")
CHUNK = 1000
RUN_EVERY = timedelta(days=1)
_ANONYMISED: dict[str, Any] = {"to_enc": b"", "from_enc": b"", "body_enc": b"",
                               "content_enc": None, "to_index": "", "from_index": None}


@dataclass(frozen=True)
class Limits:
    default_days: int
    min_days: int
    max_days: int


def limits_of(settings: Settings) -> Limits:
    return Limits(settings.message_retention_days, settings.message_retention_min_days,
                  settings.message_retention_max_days)


async def message_body_days(session: AsyncSession, *, tenant: str, limits: Limits) -> int:
    """The account's period: its own choice, else the operator's default; kept within
    the operator's current limits (which may have moved since it chose)."""
    chosen = await session.scalar(select(RetentionPolicy.message_body_days).where(
        RetentionPolicy.tenant_id == tenant))
    days = limits.default_days if chosen is None else int(chosen)
    return min(max(days, limits.min_days), limits.max_days)


async def set_message_body_days(session: AsyncSession, *, tenant: str, days: int | None,
                                limits: Limits, actor: Actor, now: datetime) -> int:
    """Choose the account's period (``None``: the operator's default); the period."""
    if days is not None and not limits.min_days <= days <= limits.max_days:
        raise InvalidRequest(f"The message retention must be {limits.min_days} to "
                             f"{limits.max_days} days on this platform.",
                             code="retention_out_of_limits", parameter="message_body_days")
    policy = await _policy(session, tenant, now)
    policy.message_body_days, policy.updated_at = days, now
    policy.updated_by = actor_label(actor)
    await record(session, [audit_row(tenant=tenant, actor=actor, action="update",
                                     table="retention_policies", row_id=tenant,
                                     fields=["message_body_days"], now=now)])
    return days if days is not None else limits.default_days


async def _policy(session: AsyncSession, tenant: str, now: datetime) -> RetentionPolicy:
    policy = await session.get(RetentionPolicy, tenant, with_for_update=True)
    if policy is None:
        policy = RetentionPolicy(tenant_id=tenant, message_body_days=None,
                                 anonymised_through="", updated_at=now, updated_by="")
        session.add(policy)
        await session.flush()
    return policy


@dataclass(frozen=True)
class RunReport:
    id: str
    tenant: str
    cutoff: datetime
    messages: int
    keys_destroyed: int


async def apply_retention(rt: Services, *, tenant: str, now: datetime | None = None,
                          actor: Actor = SYSTEM_ACTOR) -> RunReport:
    """Anonymise the account's messages past its period and destroy the keys left
    unused; the run's report (also stored)."""
    now = now or rt.clock.now()
    limits = limits_of(rt.settings)
    async with rt.db.transaction(tenant=tenant) as session:
        cutoff = now - timedelta(days=await message_body_days(
            session, tenant=tenant, limits=limits))
        after = (await _policy(session, tenant, now)).anonymised_through
    messages, touched_keys = 0, set[str]()
    while True:
        done, keys, after, finished = await _anonymise_chunk(rt, tenant, after, cutoff, now,
                                                             actor)
        messages, touched_keys = messages + done, touched_keys | keys
        if finished:
            break
    destroyed = await _destroy_unused_keys(rt, tenant, touched_keys, now)
    report = RunReport(new_id("ret"), tenant, cutoff, messages, destroyed)
    async with rt.db.transaction(tenant=tenant) as session:
        session.add(RetentionRun(id=report.id, tenant_id=tenant, started_at=now,
                                 cutoff=cutoff, messages=messages, keys_destroyed=destroyed,
                                 finished_at=rt.clock.now()))
        (await _policy(session, tenant, now)).last_run_at = now
    if messages:
        await rt.db.forget_old_pages()
        log.info("retention_applied", tenant=tenant, messages=messages, keys=destroyed)
    return report


async def _anonymise_chunk(rt: Services, tenant: str, after: str, cutoff: datetime,
                           now: datetime, actor: Actor
                           ) -> tuple[int, set[str], str, bool]:
    """Up to ``CHUNK`` messages after id ``after``: (anonymised, their keys, the id to go
    on from, whether a message within the period, or the end, was reached)."""
    keys = await rt.vault.keys_for(tenant)
    async with rt.db.erasing(tenant=tenant, forget=False) as session:
        rows = (await session.scalars(select(Message).where(
            Message.tenant_id == tenant, Message.id > after,
        ).order_by(Message.id).limit(CHUNK))).all()
        due = []
        for row in rows:
            if row.created_at >= cutoff:
                break
            due.append(row)
        fresh = [m for m in due if m.anonymised_at is None]
        key_ids = {m.subject_key for m in fresh if m.subject_key}
        ciphers = await ciphers_of(keys, fresh)
        events = [_anonymise(m, ciphers.get(m.id), now, actor) for m in fresh]
        await record(session, events)
        if due:
            policy = await _policy(session, tenant, now)
            policy.anonymised_through = due[-1].id
    finished = len(due) < len(rows) or len(rows) < CHUNK
    return len(events), key_ids, due[-1].id if due else after, finished


def _anonymise(message: Message, cipher: FieldCipher | None, now: datetime,
               actor: Actor) -> dict[str, Any]:
    person = _person(message, cipher)
    message.subject_country, message.subject_number_type = describe(person)
    for column, value in _ANONYMISED.items():
        setattr(message, column, value)
    message.created_at = _day(message.created_at)
    message.updated_at = _day(message.updated_at)
    message.anonymised_at = now
    message.subject_key = None  # a random id, but it would still tie their messages together
    return audit_row(tenant=message.tenant_id, actor=actor, action="anonymise",
                     table="messages", row_id=message.id,
                     fields=["body", "content", "from", "to"], now=now)


def _person(message: Message, cipher: FieldCipher | None) -> str | None:
    blob = message.to_enc if message.direction == "outbound" else message.from_enc
    column = "messages.to" if message.direction == "outbound" else "messages.from"
    if cipher is None or not blob:
        return None  # erased already: nothing to describe
    try:
        return cipher.decrypt(blob, field=column)
    except VaultError:
        return None


def describe(address: str | None) -> tuple[str | None, str | None]:
    """What statistics may keep of a person's address: a number's country and type
    (``US``, ``mobile``); an e-mail address is only that."""
    if address is None:
        return None, None
    if "@" in address:
        return None, "email"
    try:
        number = phonenumbers.parse(address)
    except phonenumbers.NumberParseException:
        return None, "unknown"
    kind = phonenumbers.PhoneNumberType.to_string(phonenumbers.number_type(number))
    return phonenumbers.region_code_for_number(number), kind.lower()


def _day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


async def _destroy_unused_keys(rt: Services, tenant: str, key_ids: set[str],
                               now: datetime) -> int:
    """Destroy each of ``key_ids`` that no message still to anonymise is under, nor a
    person's consent evidence (the proof outlives the messages: until erasure)."""
    if not key_ids:
        return 0
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        in_use = set((await session.scalars(select(Message.subject_key).distinct().where(
            Message.tenant_id == tenant, Message.subject_key.in_(sorted(key_ids)),
            Message.anonymised_at.is_(None)))).all())
        in_use |= await subject_keys_in_use(session, tenant=tenant, key_ids=sorted(key_ids))
    destroyed = 0
    for key_id in sorted(key_ids - in_use):
        if await rt.vault.erase_subject(tenant, key_id, now=now):
            destroyed += 1
    return destroyed


async def due_accounts(rt: Services, *, now: datetime, limit: int = 10) -> Sequence[str]:
    """Accounts whose last run is a day old or more (or that never had one); not a
    terminated one: its data waits for its purge, untouched, and then is gone."""
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return (await session.scalars(
            select(Account.id).outerjoin(RetentionPolicy,
                                         RetentionPolicy.tenant_id == Account.id)
            .where(Account.status != AccountStatus.TERMINATED.value,
                   (RetentionPolicy.last_run_at.is_(None))
                   | (RetentionPolicy.last_run_at <= now - RUN_EVERY))
            .order_by(Account.id).limit(limit))).all()
