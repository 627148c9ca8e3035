"""Accounts, sub-accounts and API keys. Services flush, never commit."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.key_limits import KeyLimits
from tidings.accounts.models import Account, AccountStatus, ApiKey
from tidings.audit.service import Actor, audit_row, record
from tidings.core.ids import new_id
from tidings.storage.vault import TenantKeys
from tidings.web.errors import Conflict, InvalidRequest, NotFound
from tidings.webhooks.signing import new_webhook_secret
from tidings.webhooks.subscriptions import statuses_column

KEY_PREFIX = "tdk"


class _Unchanged(Enum):
    UNCHANGED = "unchanged"


UNCHANGED = _Unchanged.UNCHANGED  # an update that leaves a field as it is
WebhookStatuses = Sequence[str] | None | Literal[_Unchanged.UNCHANGED]


@dataclass(frozen=True)
class NewApiKey:
    key: ApiKey
    secret: str  # the whole key as the client will send it; shown once


def hash_key_secret(secret: str) -> str:
    # API keys carry 256 bits of randomness: a fast hash is enough, unlike passwords.
    return hashlib.sha256(secret.encode()).hexdigest()


# What create_api_key hands out: hex prefix, URL-safe secret without "_". Anything
# else (a NUL, say) must not reach a query.
_API_KEY = re.compile(rf"{KEY_PREFIX}_([0-9a-f]{{1,32}})_[A-Za-z0-9-]{{1,160}}")


def split_api_key(raw: str) -> tuple[str, str] | None:
    """``tdk_<prefix>_<secret>`` -> (prefix, raw) or None when it cannot be a key."""
    match = _API_KEY.fullmatch(raw)
    return (match.group(1), raw) if match else None


async def do_create_account(session: AsyncSession, *, keys: TenantKeys, name: str,
                            parent_id: str | None, status: AccountStatus, actor: Actor,
                            now: datetime, webhook_url: str | None = None,
                            webhook_statuses: str | None = None) -> tuple[Account, str]:
    """Create an account (tenant); returns it with its webhook secret in clear, once."""
    if not name.strip():
        raise InvalidRequest("An account needs a name.", code="invalid_name")
    secret = new_webhook_secret()
    account = Account(
        id=keys.tenant_id, parent_id=parent_id, name=name.strip(), status=status.value,
        webhook_url=webhook_url, webhook_statuses=webhook_statuses,
        webhook_secret_enc=keys.encrypt(secret, field="accounts.webhook_secret"),
        created_at=now, updated_at=now,
    )
    session.add(account)
    await record(session, [audit_row(tenant=account.id, actor=actor, action="create",
                                     table="accounts", row_id=account.id,
                                     fields=["name", "status", "webhook_url", "webhook_statuses"],
                                     now=now)])
    return account, secret


def new_account_id() -> str:
    return new_id("acc")


async def do_create_api_key(session: AsyncSession, *, tenant: str, name: str, actor: Actor,
                            now: datetime, limits: KeyLimits | None = None) -> NewApiKey:
    """A new key; without ``limits``, one with every permission of the account (what
    the operator's ``tidings accounts keys create`` and a new account's first key get)."""
    prefix = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32).replace('_', 'A')}"
    key = ApiKey(id=new_id("key"), tenant_id=tenant, prefix=prefix,
                 secret_hash=hash_key_secret(secret), name=name or "default",
                 created_at=now, revoked_at=None, last_used_at=None,
                 created_by=f"{actor.type}:{actor.id}")
    fields = ["name", "created_by"]
    if limits is not None:
        key.scopes, key.expires_at = limits.scopes_column, limits.expires_at
        key.allowed_ips = limits.networks_column
        fields += ["scopes", "expires_at", "allowed_ips"]
    session.add(key)
    await record(session, [audit_row(tenant=tenant, actor=actor, action="create",
                                     table="api_keys", row_id=key.id, fields=fields, now=now)])
    return NewApiKey(key, secret)


async def do_revoke_api_key(session: AsyncSession, *, tenant: str, key_id: str, actor: Actor,
                            now: datetime) -> ApiKey:
    key = await session.scalar(select(ApiKey).where(ApiKey.id == key_id,
                                                    ApiKey.tenant_id == tenant))
    if key is None:
        raise NotFound(f"No API key {key_id!r} in this account.", code="api_key_not_found")
    if key.revoked_at is None:
        key.revoked_at = now
        await record(session, [audit_row(tenant=tenant, actor=actor, action="update",
                                         table="api_keys", row_id=key.id,
                                         fields=["revoked_at"], now=now)])
    return key


async def list_api_keys(session: AsyncSession, *, tenant: str) -> list[ApiKey]:
    rows = await session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant)
                                 .order_by(ApiKey.created_at, ApiKey.id))
    return list(rows.all())


async def get_account(session: AsyncSession, *, account_id: str) -> Account:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound(f"No account {account_id!r}.", code="account_not_found")
    return account


async def list_accounts(session: AsyncSession, *, parent_id: str | None) -> list[Account]:
    query = select(Account).order_by(Account.created_at)
    if parent_id is not None:
        query = query.where(Account.parent_id == parent_id)
    return list((await session.scalars(query)).all())


async def do_update_account(session: AsyncSession, *, account: Account, actor: Actor,
                            now: datetime, name: str | None = None,
                            webhook_url: str | None = None, clear_webhook: bool = False,
                            webhook_statuses: WebhookStatuses = UNCHANGED,
                            status: AccountStatus | None = None) -> Account:
    """Change what is given; ``webhook_statuses=None`` means every change again."""
    changed: list[str] = []
    if name is not None and not name.strip():
        raise InvalidRequest("An account needs a name.", code="invalid_name")
    if name is not None and name.strip() != account.name:
        account.name = name.strip()
        changed.append("name")
    new_webhook_url = None if clear_webhook else webhook_url
    if (clear_webhook or webhook_url is not None) and new_webhook_url != account.webhook_url:
        account.webhook_url = new_webhook_url
        changed.append("webhook_url")
    if not isinstance(webhook_statuses, _Unchanged):
        stored = statuses_column(webhook_statuses)
        if stored != account.webhook_statuses:
            account.webhook_statuses = stored
            changed.append("webhook_statuses")
    if status is not None and status.value != account.status:
        _check_status_change(account.status, status)
        account.status = status.value
        changed.append("status")
    if changed:
        account.updated_at = now
        await record(session, [audit_row(tenant=account.id, actor=actor, action="update",
                                         table="accounts", row_id=account.id, fields=changed,
                                         now=now)])
    return account


def _check_status_change(current: str, new: AccountStatus) -> None:
    if current == AccountStatus.TERMINATED:
        raise Conflict("A terminated account cannot change status.", code="account_terminated")


MAX_DEPTH = 32  # nesting depth is bounded; a cycle in parent ids cannot loop forever


async def ancestry(session: AsyncSession, *, account_id: str) -> list[Account]:
    """``account_id`` and every account above it, up to its root (empty when unknown)."""
    chain: list[Account] = []
    current: str | None = account_id
    while current is not None and len(chain) < MAX_DEPTH:
        account = await session.get(Account, current)
        if account is None:
            break
        chain.append(account)
        current = account.parent_id
    return chain


def below(chain: list[Account], ancestor_id: str) -> bool:
    """Whether the account ``chain`` starts from is ``ancestor_id`` or sits below it."""
    return any(account.id == ancestor_id for account in chain)


def effective_status(chain: list[Account]) -> str:
    """The status that governs ``chain[0]`` (an ``ancestry``): a terminated or suspended
    account anywhere above it holds back everything below it, whoever acts."""
    if not chain:
        return AccountStatus.TERMINATED.value  # an account that is gone does nothing
    statuses = {a.status for a in chain}
    for held in (AccountStatus.TERMINATED, AccountStatus.SUSPENDED):
        if held in statuses:
            return held.value
    return chain[0].status
