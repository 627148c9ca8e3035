"""HTTP endpoints of the current account, its sub-accounts and its API keys."""

from __future__ import annotations

from fastapi import APIRouter

from tidings.accounts.auth import Principal
from tidings.accounts.deps import AnyMember, MayManageKeys, MayManageSubaccounts, MayManageWebhooks
from tidings.accounts.key_limits import check_key_limits, networks_out, scopes_out
from tidings.accounts.models import Account, AccountRights, AccountStatus, ApiKey
from tidings.accounts.provision import provision_account
from tidings.accounts.rights import (
    Rights,
    chain_below,
    do_set_rights,
    effective_of_chain,
    ensure_may_create_subaccounts,
    ensure_may_manage_users,
    normalize_sender_ids,
    rights_of,
)
from tidings.accounts.schemas import (
    AccountOut,
    AccountStatusOut,
    AccountWithSecrets,
    ApiKeyOut,
    CreateApiKey,
    CreateSubAccount,
    NewApiKeyOut,
    ResumeAccount,
    RightsOut,
    RightsValues,
    SetRights,
    SuspendAccount,
    UpdateAccount,
    WebhookSecretOut,
)
from tidings.accounts.service import (
    UNCHANGED,
    do_create_api_key,
    do_revoke_api_key,
    do_update_account,
    get_account,
    list_accounts,
    list_api_keys,
)
from tidings.accounts.suspension import do_resume, do_suspend, reason_of
from tidings.core.services import Services
from tidings.mail.account_notices import queue_suspension_notice
from tidings.mail.service import wake_sender
from tidings.storage.db import SYSTEM
from tidings.storage.vault import TenantKeys
from tidings.web.deps import PROBLEMS_OF_API_KEY_ROUTES, KnownQueryOnly, RuntimeDep
from tidings.web.errors import Forbidden, problem_responses
from tidings.webhooks.destinations import check_webhook_url
from tidings.webhooks.subscriptions import statuses_out

router = APIRouter(prefix="/v1", tags=["accounts"],
                   responses=PROBLEMS_OF_API_KEY_ROUTES)


def account_out(account: Account) -> AccountOut:
    return AccountOut(id=account.id, parent_id=account.parent_id, name=account.name,
                      status=account.status, webhook_url=account.webhook_url,
                      webhook_statuses=statuses_out(account.webhook_statuses),
                      created_at=account.created_at, updated_at=account.updated_at)


def key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(id=key.id, name=key.name, prefix=key.prefix, scopes=scopes_out(key),
                     expires_at=key.expires_at, allowed_ips=networks_out(key),
                     created_by=key.created_by, created_at=key.created_at,
                     revoked_at=key.revoked_at, last_used_at=key.last_used_at)


@router.get("/account", response_model=AccountOut, summary="The account acted upon",
            operation_id="get_account")
async def read_account(rt: RuntimeDep, principal: AnyMember) -> AccountOut:
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        return account_out(await get_account(session, account_id=principal.tenant))


@router.patch("/account", response_model=AccountOut,
              summary="Rename, or set the webhook URL and the statuses it gets",
              operation_id="update_account", responses=problem_responses(413))
async def update_account(body: UpdateAccount, rt: RuntimeDep,
                         principal: MayManageWebhooks) -> AccountOut:
    clear = "webhook_url" in body.model_fields_set and body.webhook_url is None
    check_webhook_url(body.webhook_url, field="webhook_url",
                      allow_private=rt.settings.webhook_allow_private)
    statuses = (body.webhook_statuses if "webhook_statuses" in body.model_fields_set
                else UNCHANGED)
    async with rt.db.transaction(tenant=principal.tenant) as session:
        account = await get_account(session, account_id=principal.tenant)
        await do_update_account(session, account=account, actor=principal.actor,
                                now=rt.clock.now(), name=body.name,
                                webhook_url=body.webhook_url, clear_webhook=clear,
                                webhook_statuses=statuses)
    rt.auth.invalidate()
    return account_out(account)


@router.get("/account/webhook-secret", response_model=WebhookSecretOut,
            summary="The secret that signs this account's webhooks",
            operation_id="get_webhook_secret")
async def read_webhook_secret(rt: RuntimeDep, principal: MayManageWebhooks) -> WebhookSecretOut:
    keys = await rt.vault.keys_for(principal.tenant)
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        account = await get_account(session, account_id=principal.tenant)
    return WebhookSecretOut(webhook_secret=keys.decrypt(account.webhook_secret_enc,
                                                        field="accounts.webhook_secret"))


@router.post("/accounts", status_code=201, response_model=AccountWithSecrets,
             summary="Create a sub-account",
             operation_id="create_sub_account", responses=problem_responses(413))
async def create_sub_account(body: CreateSubAccount, rt: RuntimeDep,
                             principal: MayManageSubaccounts) -> AccountWithSecrets:
    # Not a trial either: each sub-account would bring a free allowance of its own.
    if principal.account_status != AccountStatus.ACTIVE:
        raise Forbidden(f"A {principal.account_status} account cannot create sub-accounts.",
                        code=f"account_{principal.account_status}")
    ensure_may_create_subaccounts((await rt.account_rights.effective(principal.tenant)).rights)
    made = await provision_account(rt, name=body.name, parent_id=principal.tenant,
                                   status=AccountStatus.ACTIVE,
                                   actor=principal.actor, webhook_url=body.webhook_url,
                                   webhook_statuses=body.webhook_statuses)
    return AccountWithSecrets(**account_out(made.account).model_dump(), api_key=made.api_key,
                              api_key_id=made.api_key_id, webhook_secret=made.webhook_secret)


@router.get("/accounts", response_model=list[AccountOut], summary="Direct sub-accounts",
            dependencies=[KnownQueryOnly], operation_id="list_sub_accounts")
async def list_sub_accounts(rt: RuntimeDep, principal: MayManageSubaccounts) -> list[AccountOut]:
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        return [account_out(a) for a in await list_accounts(session, parent_id=principal.tenant)]


@router.post("/keys", status_code=201, response_model=NewApiKeyOut, summary="Create an API key",
             operation_id="create_api_key", responses=problem_responses(413))
async def create_key(body: CreateApiKey, rt: RuntimeDep,
                     principal: MayManageKeys) -> NewApiKeyOut:
    # A suspension holds the subtree where it is: no new credential slips out of it.
    if principal.account_status in (AccountStatus.SUSPENDED, AccountStatus.TERMINATED):
        raise Forbidden(f"A {principal.account_status} account cannot create API keys.",
                        code=f"account_{principal.account_status}")
    ensure_may_manage_users((await rt.account_rights.effective(principal.tenant)).rights)
    now = rt.clock.now()
    limits = check_key_limits(scopes=body.scopes, expires_at=body.expires_at,
                              allowed_ips=body.allowed_ips, granted=principal.permissions,
                              now=now)
    async with rt.db.transaction(tenant=principal.tenant) as session:
        made = await do_create_api_key(session, tenant=principal.tenant, name=body.name,
                                       actor=principal.actor, now=now, limits=limits)
    return NewApiKeyOut(**key_out(made.key).model_dump(), key=made.secret)


@router.get("/keys", response_model=list[ApiKeyOut], summary="API keys of the account",
            dependencies=[KnownQueryOnly], operation_id="list_api_keys")
async def list_keys(rt: RuntimeDep, principal: MayManageKeys) -> list[ApiKeyOut]:
    async with rt.db.transaction(tenant=principal.tenant, write=False) as session:
        return [key_out(k) for k in await list_api_keys(session, tenant=principal.tenant)]


@router.delete("/keys/{key_id}", response_model=ApiKeyOut, summary="Revoke an API key",
               operation_id="revoke_api_key")
async def revoke_key(key_id: str, rt: RuntimeDep, principal: MayManageKeys) -> ApiKeyOut:
    async with rt.db.transaction(tenant=principal.tenant) as session:
        key = await do_revoke_api_key(session, tenant=principal.tenant, key_id=key_id[:40],
                                      actor=principal.actor, now=rt.clock.now())
    rt.auth.invalidate()
    return key_out(key)


# --- sub-account rights and suspension --------------------------------------------------

def _values(rights: Rights) -> RightsValues:
    return RightsValues(
        channels=None if rights.channels is None else sorted(rights.channels),
        sender_ids=None if rights.sender_ids is None else sorted(rights.sender_ids),
        monthly_message_cap=rights.monthly_message_cap,
        requests_per_second=rights.requests_per_second,
        may_create_subaccounts=rights.may_create_subaccounts,
        may_manage_users=rights.may_manage_users)


def _rights_out(account_id: str, own: Rights, effective: Rights) -> RightsOut:
    return RightsOut(account_id=account_id, **_values(own).model_dump(),
                     effective=_values(effective))


@router.get("/accounts/{sub_account_id}/rights", response_model=RightsOut,
            summary="The rights of a sub-account (or of the account acted upon)",
            operation_id="get_sub_account_rights")
async def read_rights(sub_account_id: str, rt: RuntimeDep,
                      principal: AnyMember) -> RightsOut:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        chain = await chain_below(session, account_id=sub_account_id[:40],
                                  ancestor_id=principal.tenant, strictly=False)
        row = await session.get(AccountRights, chain[0].id)
        own = await rights_of(row, rt.vault) if row is not None else Rights()
        effective = await effective_of_chain(session, rt.vault, chain)
    return _rights_out(chain[0].id, own, effective.rights)


@router.put("/accounts/{sub_account_id}/rights", response_model=RightsOut,
            summary="Set the rights of a sub-account (by an account above it)",
            operation_id="set_sub_account_rights", responses=problem_responses(413))
async def set_rights(sub_account_id: str, body: SetRights, rt: RuntimeDep,
                     principal: MayManageSubaccounts) -> RightsOut:
    rights = Rights(
        channels=None if body.channels is None else frozenset(body.channels),
        sender_ids=None if body.sender_ids is None else normalize_sender_ids(body.sender_ids),
        monthly_message_cap=body.monthly_message_cap,
        requests_per_second=body.requests_per_second,
        may_create_subaccounts=body.may_create_subaccounts,
        may_manage_users=body.may_manage_users)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        chain = await chain_below(session, account_id=sub_account_id[:40],
                                  ancestor_id=principal.tenant)
        limit = (await effective_of_chain(session, rt.vault, chain[1:])).rights
    parent_id = chain[1].id  # the row is the parent's (migration 0016)
    keys = await rt.vault.keys_for(parent_id)
    async with rt.db.transaction(tenant=parent_id) as session:
        account = await get_account(session, account_id=chain[0].id)
        await do_set_rights(session, keys=keys, account=account, rights=rights, limit=limit,
                            actor=principal.actor, now=rt.clock.now())
    rt.account_rights.invalidate()
    return _rights_out(chain[0].id, rights, rights.within(limit))


async def _below_with_keys(rt: Services, sub_account_id: str,
                           principal: Principal) -> tuple[list[Account], TenantKeys]:
    """The sub-account's ancestry up to the root (404 unless below the caller), and
    its keys."""
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        chain = await chain_below(session, account_id=sub_account_id[:40],
                                  ancestor_id=principal.tenant)
    return chain, await rt.vault.keys_for(chain[0].id)


async def _status_out(rt: RuntimeDep, account: Account) -> AccountStatusOut:
    keys = await rt.vault.keys_for(account.id)
    return AccountStatusOut(**account_out(account).model_dump(),
                            status_reason=reason_of(account, keys))


@router.post("/accounts/{sub_account_id}/suspend", response_model=AccountStatusOut,
             summary="Suspend a sub-account and everything below it",
             operation_id="suspend_sub_account", responses=problem_responses(413))
async def suspend_sub_account(sub_account_id: str, body: SuspendAccount, rt: RuntimeDep,
                              principal: MayManageSubaccounts) -> AccountStatusOut:
    chain, keys = await _below_with_keys(rt, sub_account_id, principal)
    async with rt.db.transaction(tenant=chain[0].id) as session:  # as the account itself
        account = await get_account(session, account_id=chain[0].id)
        await do_suspend(session, account=account, keys=keys, reason=body.reason,
                         by=principal.tenant, actor=principal.actor, now=rt.clock.now())
        await queue_suspension_notice(rt, session, account=account, reason=body.reason,
                                      actor=principal.actor, now=rt.clock.now())
    wake_sender(rt)
    rt.auth.invalidate()
    return await _status_out(rt, account)


@router.post("/accounts/{sub_account_id}/resume", response_model=AccountStatusOut,
             summary="Lift a sub-account's suspension made by this account or below it",
             operation_id="resume_sub_account", responses=problem_responses(413))
async def resume_sub_account(sub_account_id: str, body: ResumeAccount, rt: RuntimeDep,
                             principal: MayManageSubaccounts) -> AccountStatusOut:
    chain, keys = await _below_with_keys(rt, sub_account_id, principal)
    async with rt.db.transaction(tenant=chain[0].id) as session:
        account = await get_account(session, account_id=chain[0].id)
        await do_resume(session, account=account, keys=keys, reason=body.reason, chain=chain,
                        by=principal.tenant, actor=principal.actor, now=rt.clock.now())
    rt.auth.invalidate()
    return await _status_out(rt, account)
