"""Create an account with its first API key: shared by the CLI and the API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tidings.accounts.models import Account, AccountStatus
from tidings.accounts.service import do_create_account, do_create_api_key, new_account_id
from tidings.audit.service import Actor
from tidings.core.services import Services
from tidings.web.errors import InvalidRequest
from tidings.webhooks.destinations import check_webhook_url
from tidings.webhooks.subscriptions import statuses_column


@dataclass(frozen=True)
class Provisioned:
    account: Account
    api_key_id: str
    api_key: str  # shown once
    webhook_secret: str  # shown once; readable again by the account via the API


async def provision_account(rt: Services, *, name: str, parent_id: str | None,
                            status: AccountStatus, actor: Actor,
                            webhook_url: str | None = None,
                            webhook_statuses: Sequence[str] | None = None) -> Provisioned:
    # Checked before any key is made for an account that will not exist.
    if not name.strip():
        raise InvalidRequest("An account needs a name.", code="invalid_name")
    statuses = statuses_column(webhook_statuses)
    check_webhook_url(webhook_url, field="webhook_url",
                      allow_private=rt.settings.webhook_allow_private)
    account_id = new_account_id()
    keys = await rt.vault.keys_for(account_id)
    now = rt.clock.now()
    async with rt.db.transaction(tenant=account_id) as session:
        account, secret = await do_create_account(
            session, keys=keys, name=name, parent_id=parent_id, status=status, actor=actor,
            now=now, webhook_url=webhook_url, webhook_statuses=statuses)
        key = await do_create_api_key(session, tenant=account_id, name="default", actor=actor,
                                      now=now)
    return Provisioned(account, key.key.id, key.secret, secret)
