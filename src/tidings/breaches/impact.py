"""The impact of a breach, estimated from its scope (BRE-3): per account, how many
people (data subjects) and records the platform held in the breached categories.

A scope names accounts, a time window (its start included, its end not) and data
categories (fideslang keys, ``core/data_categories.py``). An account named covers the
accounts below it (a client's sub-accounts hold its data too); each is counted on its
own line, with the client at the top of its tree, the controller the notice goes to.

Where the categories are held:

- **messages** (``user.contact.phone_number``: SMS and WhatsApp; ``user.contact.email``:
  e-mail; ``user.contact``, ``user.content.private``, ``user.unique_id.*``: every
  channel): the messages created in the window; a record is a message, a subject a
  person told apart by their blind index (an outbound message's recipient,
  ``to_index``; an inbound message's sender, ``from_index``: the same token for one
  person). An anonymised or erased message is still a record, but its person can no
  longer be told apart and is not counted.
- **users** (``user.contact.email``, ``user.authorization.credentials``,
  ``user.unique_id.deterministic``): the account's people who log in, those created
  before the window's end; each is a subject and a record.

The subjects of the two sources are added up: a person who is both a recipient and a
user counts twice, so the total leans high, as an estimate for a notice should.
Other categories (``user.name``, ``user.device.ip_address``) are held nowhere per
account, and count nothing. Counting needs a session that sees every tenant (``SYSTEM``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Account
from tidings.accounts.service import ancestry
from tidings.core.data_categories import (
    CONTACT,
    CREDENTIALS,
    DETERMINISTIC_ID,
    EMAIL,
    PHONE,
    PRIVATE_CONTENT,
    PSEUDONYMOUS_ID,
)
from tidings.messaging.models import Message
from tidings.messaging.schemas import Channel, Direction
from tidings.users.models import User
from tidings.web.errors import InvalidRequest

__all__ = ["MESSAGES", "USERS", "AccountImpact", "Scope", "SourceCount",
           "accounts_in_scope", "estimate_impact"]

MESSAGES, USERS = "messages", "users"
_EVERY_CHANNEL = frozenset(Channel)
# The channels of the messages that hold each category.
_MESSAGE_CHANNELS: dict[str, frozenset[Channel]] = {
    PHONE: frozenset({Channel.SMS, Channel.WHATSAPP}),
    EMAIL: frozenset({Channel.EMAIL}),
    CONTACT: _EVERY_CHANNEL,
    PRIVATE_CONTENT: _EVERY_CHANNEL,
    DETERMINISTIC_ID: _EVERY_CHANNEL,
    PSEUDONYMOUS_ID: _EVERY_CHANNEL,
}
_USER_CATEGORIES = frozenset({EMAIL, CREDENTIALS, DETERMINISTIC_ID})
_CHUNK = 500  # accounts per IN (…) list


@dataclass(frozen=True)
class Scope:
    tenants: tuple[str, ...]
    window_start: datetime
    window_end: datetime
    categories: frozenset[str]


@dataclass(frozen=True)
class SourceCount:
    subjects: int
    records: int


@dataclass(frozen=True)
class AccountImpact:
    """One account's share: ``controller_id`` is the client at the top of its tree."""

    tenant_id: str
    controller_id: str
    subjects: int
    records: int
    sources: dict[str, SourceCount] = field(default_factory=dict)


async def estimate_impact(session: AsyncSession, scope: Scope) -> list[AccountImpact]:
    """Every account of the scope (those named, each followed by those below it), with
    the subjects and records it held in the scope's window and categories.
    ``InvalidRequest`` (``unknown_account``) for an account that does not exist."""
    accounts = await accounts_in_scope(session, scope.tenants)
    ids = [account for account, _ in accounts]
    counts: dict[str, dict[str, SourceCount]] = {account: {} for account in ids}
    channels = frozenset().union(*(_MESSAGE_CHANNELS.get(c, frozenset())
                                   for c in scope.categories))
    if channels:
        for tenant, found in (await _messages(session, ids, scope, channels)).items():
            counts[tenant][MESSAGES] = found
    if scope.categories & _USER_CATEGORIES:
        for tenant, found in (await _users(session, ids, scope.window_end)).items():
            counts[tenant][USERS] = found
    return [AccountImpact(tenant_id=account, controller_id=controller,
                          subjects=sum(c.subjects for c in counts[account].values()),
                          records=sum(c.records for c in counts[account].values()),
                          sources=counts[account])
            for account, controller in accounts]


async def accounts_in_scope(session: AsyncSession,
                            tenants: Sequence[str]) -> list[tuple[str, str]]:
    """(account, its controller) for each account named and each below it, in order,
    once each."""
    found: dict[str, str] = {}
    for tenant in tenants:
        chain = await ancestry(session, account_id=tenant)
        if not chain:
            raise InvalidRequest(f"There is no account {tenant[:60]!r}.",
                                 code="unknown_account", parameter="scope.tenants")
        controller = chain[-1].id
        frontier = [tenant]
        while frontier:
            frontier = [a for a in dict.fromkeys(frontier) if a not in found]
            found.update((a, controller) for a in frontier)
            frontier = [child for part in _chunks(frontier) for child in (await session.scalars(
                select(Account.id).where(Account.parent_id.in_(part))
                .order_by(Account.created_at, Account.id))).all()]
    return list(found.items())


async def _messages(session: AsyncSession, tenants: Sequence[str], scope: Scope,
                    channels: frozenset[Channel]) -> dict[str, SourceCount]:
    person = case((Message.direction == Direction.OUTBOUND.value, Message.to_index),
                  else_=Message.from_index)
    counted: dict[str, SourceCount] = {}
    for part in _chunks(tenants):
        query = (select(Message.tenant_id, func.count(),
                        func.count(func.distinct(func.nullif(person, ""))))
                 .where(Message.tenant_id.in_(part),
                        Message.created_at >= scope.window_start,
                        Message.created_at < scope.window_end)
                 .group_by(Message.tenant_id))
        if channels != _EVERY_CHANNEL:
            query = query.where(Message.channel.in_(sorted(c.value for c in channels)))
        for tenant, records, subjects in (await session.execute(query)).all():
            counted[tenant] = SourceCount(subjects=int(subjects), records=int(records))
    return counted


async def _users(session: AsyncSession, tenants: Sequence[str],
                 before: datetime) -> dict[str, SourceCount]:
    counted: dict[str, SourceCount] = {}
    for part in _chunks(tenants):
        rows = (await session.execute(
            select(User.tenant_id, func.count())
            .where(User.tenant_id.in_(part), User.created_at < before)
            .group_by(User.tenant_id))).all()
        for tenant, people in rows:
            counted[str(tenant)] = SourceCount(subjects=int(people), records=int(people))
    return counted


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)]
