"""Sub-account rights: what an account above a sub-account lets it do.

A sub-account's rights are set by its parent (or an account above that); each right
left NULL means "no restriction beyond the parent's". What governs an account is its
own rights intersected with those of every account above it (``Rights.within``), so a
right can only narrow going down the tree, whatever order the rows were set in. The
root account has no row and no restriction.

Services flush, never commit. The send path reads rights through
``AccountRightsCache`` (no database round trip per request); the monthly cap is held
by a counter row updated in the transaction of the messages it counts
(``take_quota``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Account, AccountRights, MessageCount
from tidings.accounts.service import ancestry
from tidings.audit.service import Actor, audit_row, record
from tidings.core.ttl_cache import KeyedTtlCache
from tidings.messaging.addresses import AddressError, normalize_email, normalize_sender
from tidings.messaging.models import Message
from tidings.storage.db import SYSTEM, Database
from tidings.storage.vault import TenantKeys, Vault
from tidings.web.errors import Forbidden, InvalidRequest, NotFound

SENDER_IDS_FIELD = "account_rights.sender_ids"
MAX_SENDER_IDS = 50


@dataclass(frozen=True)
class Rights:
    """Rights as set on one account, or as they govern it (``within`` its ancestors')."""

    channels: frozenset[str] | None = None
    sender_ids: frozenset[str] | None = None
    monthly_message_cap: int | None = None
    requests_per_second: int | None = None
    may_create_subaccounts: bool | None = None
    may_manage_users: bool | None = None

    def within(self, limit: Rights) -> Rights:
        """These rights as far as ``limit`` (a parent's) lets them reach."""
        return Rights(
            channels=_narrower_set(self.channels, limit.channels),
            sender_ids=_narrower_set(self.sender_ids, limit.sender_ids),
            monthly_message_cap=_smaller(self.monthly_message_cap, limit.monthly_message_cap),
            requests_per_second=_smaller(self.requests_per_second, limit.requests_per_second),
            may_create_subaccounts=_and(self.may_create_subaccounts,
                                        limit.may_create_subaccounts),
            may_manage_users=_and(self.may_manage_users, limit.may_manage_users))

    def wider_than(self, limit: Rights) -> list[str]:
        """The rights set here that ``limit`` (the parent's effective ones) does not give."""
        return [f.name for f in fields(self)
                if _wider(getattr(self, f.name), getattr(limit, f.name))]


def _narrower_set(mine: frozenset[str] | None,
                  limit: frozenset[str] | None) -> frozenset[str] | None:
    if mine is None or limit is None:
        return limit if mine is None else mine
    return mine & limit


def _smaller(mine: int | None, limit: int | None) -> int | None:
    present = [v for v in (mine, limit) if v is not None]
    return min(present) if present else None


def _and(mine: bool | None, limit: bool | None) -> bool | None:
    if mine is None or limit is None:
        return limit if mine is None else mine
    return mine and limit


def _wider(mine: object, limit: object) -> bool:
    if mine is None or limit is None:
        return False  # unset here, or no limit above
    if isinstance(mine, frozenset) and isinstance(limit, frozenset):
        return not mine <= limit
    if isinstance(mine, bool):
        return mine and not limit
    return isinstance(mine, int) and isinstance(limit, int) and mine > limit


@dataclass(frozen=True)
class MonthlyCap:
    limit: int
    version: str  # of the rights it comes from: a counter made under others is redone


@dataclass(frozen=True)
class Effective:
    """The rights that govern an account, and a version that changes with any of the
    rows they were made from."""

    rights: Rights
    version: str = ""

    @property
    def monthly_cap(self) -> MonthlyCap | None:
        cap = self.rights.monthly_message_cap
        return None if cap is None else MonthlyCap(cap, self.version)


UNRESTRICTED = Effective(Rights())


# --- checks ---------------------------------------------------------------------------

def normalize_sender_ids(raw: Iterable[str]) -> frozenset[str]:
    """Sender ids in the form a send's ``from`` takes after its checks."""
    normalized = set()
    for sender in raw:
        try:
            normalized.add(normalize_email(sender) if "@" in sender
                           else normalize_sender(sender))
        except AddressError as exc:
            raise InvalidRequest(f"Sender id {sender!r} is not valid: {exc.message}",
                                 code="invalid_sender_id") from None
    return frozenset(normalized)


def check_send(rights: Rights, *, channels: Sequence[str], sender: str) -> None:
    """Refuse a send on a channel, or from a sender, that the account may not use."""
    if rights.channels is not None:
        refused = [c for c in channels if c not in rights.channels]
        if refused:
            raise Forbidden(f"This account may not send on {', '.join(refused)}.",
                            code="channel_not_allowed")
    if rights.sender_ids is not None and sender not in rights.sender_ids:
        raise Forbidden("This account may not send from that sender id.",
                        code="sender_id_not_allowed")


def ensure_may_create_subaccounts(rights: Rights) -> None:
    if rights.may_create_subaccounts is False:
        raise Forbidden("This account may not create sub-accounts.",
                        code="subaccounts_not_allowed")


def ensure_may_manage_users(rights: Rights) -> None:
    """Users and API keys alike: both let someone new act for the account."""
    if rights.may_manage_users is False:
        raise Forbidden("This account may not create users or API keys.",
                        code="user_management_not_allowed")


# --- reading and setting --------------------------------------------------------------

ACCOUNT_ID = re.compile(r"acc_[0-9a-z]{26}")


async def chain_below(session: AsyncSession, *, account_id: str, ancestor_id: str,
                      strictly: bool = True) -> list[Account]:
    """``account_id``'s ancestry (a cross-tenant read) when it sits below ``ancestor_id``
    (or is it, unless ``strictly``); ``NotFound`` otherwise, as for an unknown id: an
    account does not learn what exists outside its subtree."""
    chain = (await ancestry(session, account_id=account_id)
             if ACCOUNT_ID.fullmatch(account_id) else [])
    ids = [a.id for a in chain]
    if ancestor_id not in ids or (strictly and ids[0] == ancestor_id):
        raise NotFound(f"No account {account_id!r} below yours.", code="account_not_found")
    return chain


async def load_effective(session: AsyncSession, vault: Vault, *, account_id: str) -> Effective:
    """The rights that govern ``account_id`` (a cross-tenant read: rows of every
    account above it)."""
    chain = await ancestry(session, account_id=account_id)
    return await effective_of_chain(session, vault, chain)


async def effective_of_chain(session: AsyncSession, vault: Vault,
                             chain: Sequence[Account]) -> Effective:
    if not chain:
        return UNRESTRICTED
    rows = {row.account_id: row for row in (await session.scalars(
        select(AccountRights).where(AccountRights.account_id.in_([a.id for a in chain]))))}
    rights, revisions = Rights(), []
    for account in chain:
        row = rows.get(account.id)
        if row is not None:
            rights = rights.within(await rights_of(row, vault))
            revisions.append(f"{row.account_id}:{row.revision}")
    version = hashlib.sha256(" ".join(revisions).encode()).hexdigest()[:32] if revisions else ""
    return Effective(rights, version)


async def rights_of(row: AccountRights, vault: Vault) -> Rights:
    """The rights a row sets, its sender ids decrypted."""
    senders = None
    if row.sender_ids_enc is not None:
        keys = await vault.keys_for(row.tenant_id)
        senders = frozenset(json.loads(keys.decrypt(row.sender_ids_enc,
                                                     field=SENDER_IDS_FIELD)))
    return Rights(channels=frozenset(row.channels.split()) if row.channels is not None else None,
                  sender_ids=senders, monthly_message_cap=row.monthly_message_cap,
                  requests_per_second=row.requests_per_second,
                  may_create_subaccounts=row.may_create_subaccounts,
                  may_manage_users=row.may_manage_users)


async def do_set_rights(session: AsyncSession, *, keys: TenantKeys, account: Account,
                        rights: Rights, limit: Rights, actor: Actor,
                        now: datetime) -> AccountRights:
    """Set a sub-account's rights, in a transaction of its parent (``keys`` the
    parent's); refused whole when one is wider than ``limit``, the parent's own."""
    if account.parent_id is None:
        raise InvalidRequest("A root account has no rights to set.", code="not_a_sub_account")
    wider = rights.wider_than(limit)
    if wider:
        raise InvalidRequest(
            f"Wider than the parent account's own rights: {', '.join(wider)}.",
            code="rights_wider_than_parent", fields=wider)
    row = await session.get(AccountRights, account.id)
    action = "update"
    if row is None:
        row, action = AccountRights(account_id=account.id, tenant_id=account.parent_id,
                                    revision=0), "create"
        session.add(row)
    changed = _apply(row, rights, keys)
    # A new revision on every change: a monthly counter made under the old rights is
    # made again (the account may have sent uncounted while it had no cap).
    row.revision += 1
    row.updated_at = now
    await record(session, [audit_row(tenant=account.parent_id, actor=actor, action=action,
                                     table="account_rights", row_id=account.id,
                                     fields=changed, now=now)])
    return row


def _apply(row: AccountRights, rights: Rights, keys: TenantKeys) -> list[str]:
    senders = (None if rights.sender_ids is None else
               keys.encrypt(json.dumps(sorted(rights.sender_ids)), field=SENDER_IDS_FIELD))
    values = {
        "channels": None if rights.channels is None else " ".join(sorted(rights.channels)),
        "monthly_message_cap": rights.monthly_message_cap,
        "requests_per_second": rights.requests_per_second,
        "may_create_subaccounts": rights.may_create_subaccounts,
        "may_manage_users": rights.may_manage_users,
    }
    changed = [name for name, value in values.items() if getattr(row, name) != value]
    for name, value in values.items():
        setattr(row, name, value)
    old_senders = (None if row.sender_ids_enc is None else
                   frozenset(json.loads(keys.decrypt(row.sender_ids_enc,
                                                     field=SENDER_IDS_FIELD))))
    if old_senders != rights.sender_ids:
        changed.append("sender_ids")
    row.sender_ids_enc = senders
    return changed


# --- the monthly cap ------------------------------------------------------------------

def month_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


async def take_quota(session: AsyncSession, *, tenant: str, cap: MonthlyCap, wanted: int,
                     now: datetime) -> int:
    """Count up to ``wanted`` messages against the month's cap, in the transaction that
    stores them; how many it may store (what it may not is not counted).

    The counter row is locked (``FOR UPDATE`` on PostgreSQL; SQLite has one writer), so
    concurrent senders in any process take turns and the cap holds exactly."""
    month = month_of(now)
    counter = await _locked_counter(session, tenant, month)
    if counter is None:
        # Made once: a concurrent sender that made it first wins, and its row is ours.
        await session.execute(_insert_if_absent(session, {
            "tenant_id": tenant, "month": month, "rights_version": cap.version,
            "count": await _month_so_far(session, tenant, now)}))
        counter = await _locked_counter(session, tenant, month)
        if counter is None:
            raise RuntimeError("the month's counter is missing after it was made")
    elif counter.rights_version != cap.version:
        counter.count = await _month_so_far(session, tenant, now)
        counter.rights_version = cap.version
    granted = max(0, min(wanted, cap.limit - counter.count))
    counter.count += granted
    await session.flush()
    return granted


def _insert_if_absent(session: AsyncSession,
                      values: dict[str, object]) -> postgresql.Insert | sqlite.Insert:
    keys = ["tenant_id", "month"]
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(MessageCount).values(values).on_conflict_do_nothing(
            index_elements=keys)
    return sqlite.insert(MessageCount).values(values).on_conflict_do_nothing(
        index_elements=keys)


async def _locked_counter(session: AsyncSession, tenant: str,
                          month: str) -> MessageCount | None:
    found: MessageCount | None = await session.scalar(
        select(MessageCount).where(MessageCount.tenant_id == tenant,
                                   MessageCount.month == month)
        .with_for_update().execution_options(populate_existing=True))
    return found


async def _month_so_far(session: AsyncSession, tenant: str, now: datetime) -> int:
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    counted = await session.scalar(select(func.count()).select_from(Message).where(
        Message.tenant_id == tenant, Message.direction == "outbound",
        Message.created_at >= start))
    return int(counted or 0)


def cap_reached() -> Forbidden:
    return Forbidden("This account has sent its monthly message cap.",
                     code="monthly_cap_reached")


# --- the cache the send path reads ----------------------------------------------------

class AccountRightsCache:
    """Effective rights by account, cached for ``cache_seconds``: a change made in this
    process applies at once (``invalidate``), one made in another within the TTL."""

    def __init__(self, db: Database, vault: Vault, *, cache_seconds: float) -> None:
        self._db, self._vault = db, vault
        self._cache: KeyedTtlCache[str, Effective] = KeyedTtlCache(self._load,
                                                                   ttl=cache_seconds)

    async def _load(self, account_id: str) -> Effective:
        async with self._db.transaction(tenant=SYSTEM, write=False) as session:
            return await load_effective(session, self._vault, account_id=account_id)

    def invalidate(self) -> None:
        """Forget every account's rights (a change reaches the whole subtree)."""
        self._cache.clear()

    async def effective(self, account_id: str) -> Effective:
        return await self._cache.get(account_id)

    async def requests_per_second(self, account_id: str) -> int | None:
        """The account's own limit, for the rate limiter (None: no override)."""
        return (await self.effective(account_id)).rights.requests_per_second

