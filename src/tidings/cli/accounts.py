"""``tidings accounts`` and ``tidings keys``: the operator's account tools."""

from __future__ import annotations

import re

import click

from tidings.accounts.models import AccountStatus
from tidings.accounts.provision import provision_account
from tidings.accounts.service import (
    UNCHANGED,
    WebhookStatuses,
    do_create_api_key,
    do_revoke_api_key,
    do_update_account,
    get_account,
    list_accounts,
)
from tidings.cli.common import emit, operator_actor, with_runtime
from tidings.cli.key_rotation import rotate_command
from tidings.cli.verifications import reject, verifications, verify
from tidings.messaging.schemas import URL_PATTERN
from tidings.operators.account_status import set_account_status
from tidings.runtime import Runtime
from tidings.webhooks.destinations import check_webhook_url
from tidings.webhooks.subscriptions import CHOICES, statuses_out

STATUSES = click.Choice([s.value for s in AccountStatus])
URL = re.compile(URL_PATTERN)


@click.group("accounts")
def accounts() -> None:
    """Create and list client accounts."""


@accounts.command("create")
@click.option("--name", required=True, help="The client's name.")
@click.option("--parent", default=None, help="Create a sub-account of this account id.")
@click.option("--status", type=STATUSES, default=AccountStatus.ACTIVE.value, show_default=True)
@click.option("--webhook-url", default=None, help="Default URL for this account's webhooks.")
@click.option("--webhook-statuses", default=None, metavar="S1,S2",
              help=f"Only these status changes are POSTed (of {', '.join(CHOICES)}); "
                   "default: every change.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create(name: str, parent: str | None, status: str, webhook_url: str | None,
           webhook_statuses: str | None, as_json: bool) -> None:
    """Create an account and its first API key (shown once)."""
    async def work(rt: Runtime) -> None:
        if parent:
            async with rt.db.transaction(tenant=parent, write=False) as session:
                await get_account(session, account_id=parent)
        made = await provision_account(rt, name=name, parent_id=parent,
                                       status=AccountStatus(status), actor=operator_actor(),
                                       webhook_url=webhook_url,
                                       webhook_statuses=_statuses(webhook_statuses))
        data = {"id": made.account.id, "name": made.account.name,
                "status": made.account.status, "parent_id": made.account.parent_id,
                "webhook_statuses": statuses_out(made.account.webhook_statuses),
                "api_key": made.api_key, "api_key_id": made.api_key_id,
                "webhook_secret": made.webhook_secret}
        emit(data, as_json=as_json, text="\n".join(f"{k}: {v}" for k, v in data.items()))
    with_runtime(work)


@accounts.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(as_json: bool) -> None:
    """List every account."""
    async def work(rt: Runtime) -> None:
        async with rt.db.transaction(tenant="*system*", write=False) as session:
            rows = await list_accounts(session, parent_id=None)
        data = [{"id": a.id, "name": a.name, "status": a.status, "parent_id": a.parent_id,
                 "created_at": a.created_at.isoformat()} for a in rows]
        emit(data, as_json=as_json, text="\n".join(
            f"{a['id']}  {a['status']:<20} {a['name']}" for a in data) or "no accounts")
    with_runtime(work)


@accounts.command("set-status")
@click.argument("account_id")
@click.argument("status", type=STATUSES)
@click.option("--reason", default=None, help="Why (kept encrypted; shown to the account).")
def set_status(account_id: str, status: str, reason: str | None) -> None:
    """Suspend, reactivate or terminate an account; a suspension holds back everything
    below it too, open SMPP binds included, and only the operator lifts its own."""
    async def work(rt: Runtime) -> None:
        done = await set_account_status(rt, account_id=account_id,
                                        status=AccountStatus(status), reason=reason,
                                        actor=operator_actor())
        notified = done.owners_notified
        click.echo(f"{account_id}: {status}"
                   + (f" ({notified} owner(s) notified by mail)" if notified else ""))
    with_runtime(work)


@accounts.command("set-webhook")
@click.argument("account_id")
@click.option("--url", default=None, help="The account's webhook URL.")
@click.option("--no-url", is_flag=True, help="Remove the account's webhook URL.")
@click.option("--statuses", default=None, metavar="S1,S2",
              help=f"Only these status changes are POSTed (of {', '.join(CHOICES)}).")
@click.option("--all-statuses", is_flag=True, help="Every status change is POSTed again.")
def set_webhook(account_id: str, url: str | None, no_url: bool, statuses: str | None,
                all_statuses: bool) -> None:
    """Set where an account's webhooks go and which status changes they carry."""
    if (url and no_url) or (statuses and all_statuses):
        raise click.UsageError("--url/--no-url and --statuses/--all-statuses each take one.")
    if url is not None and URL.fullmatch(url) is None:
        raise click.BadParameter("an http:// or https:// URL", param_hint="--url")
    chosen: WebhookStatuses = None if all_statuses else (
        _statuses(statuses) if statuses else UNCHANGED)

    async def work(rt: Runtime) -> None:
        check_webhook_url(url, field="--url", allow_private=rt.settings.webhook_allow_private)
        async with rt.db.transaction(tenant=account_id) as session:
            account = await get_account(session, account_id=account_id)
            await do_update_account(session, account=account, actor=operator_actor(),
                                    now=rt.clock.now(), webhook_url=url, clear_webhook=no_url,
                                    webhook_statuses=chosen)
        shown = ",".join(statuses_out(account.webhook_statuses) or ["every change"])
        click.echo(f"{account_id}: {account.webhook_url or 'no webhook URL'}; {shown}")
    with_runtime(work)


# Verification (docs/signup.md): verifications, verify, reject.
accounts.add_command(verifications)
accounts.add_command(verify)
accounts.add_command(reject)


def _statuses(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text is not None else None


@click.group("keys")
def keys() -> None:
    """Create and revoke API keys; rotate the key store's key-encryption keys."""


keys.add_command(rotate_command)


@keys.command("create")
@click.option("--account", "account_id", required=True, help="Account id.")
@click.option("--name", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create_key(account_id: str, name: str, as_json: bool) -> None:
    """Create an API key; the key is shown once."""
    async def work(rt: Runtime) -> None:
        async with rt.db.transaction(tenant=account_id) as session:
            await get_account(session, account_id=account_id)
            made = await do_create_api_key(session, tenant=account_id, name=name,
                                           actor=operator_actor(), now=rt.clock.now())
        data = {"id": made.key.id, "account_id": account_id, "api_key": made.secret}
        emit(data, as_json=as_json, text=f"{made.key.id}: {made.secret}")
    with_runtime(work)


@keys.command("revoke")
@click.option("--account", "account_id", required=True, help="Account id.")
@click.argument("key_id")
def revoke_key(account_id: str, key_id: str) -> None:
    """Revoke an API key at once."""
    async def work(rt: Runtime) -> None:
        async with rt.db.transaction(tenant=account_id) as session:
            await do_revoke_api_key(session, tenant=account_id, key_id=key_id,
                                    actor=operator_actor(), now=rt.clock.now())
        click.echo(f"revoked {key_id}")
    with_runtime(work)
