"""``tidings smpp-credentials``: SMPP binds for client accounts."""

from __future__ import annotations

import click

from tidings.cli.common import emit, operator_actor, with_runtime
from tidings.runtime import Runtime
from tidings.smpp_gateway.service import (
    do_create_credential,
    do_revoke_credential,
    list_credentials,
)


@click.group("smpp-credentials")
def smpp_credentials() -> None:
    """Credentials clients bind with to Tidings' SMPP server (TIDINGS_SMPP_PORT)."""


@smpp_credentials.command("create")
@click.option("--account", "account_id", required=True, help="The account that binds.")
@click.option("--system-id", default=None, help="Up to 16 letters/digits [default: random].")
@click.option("--name", default="default")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create(account_id: str, system_id: str | None, name: str, as_json: bool) -> None:
    """Create a system_id and password (the password is shown once)."""
    async def work(rt: Runtime) -> None:
        from tidings.accounts.service import get_account

        async with rt.db.transaction(tenant=account_id) as session:
            await get_account(session, account_id=account_id)
            made = await do_create_credential(session, tenant=account_id, system_id=system_id,
                                              name=name, actor=operator_actor(),
                                              now=rt.clock.now())
        data = {"id": made.credential.id, "account_id": account_id,
                "system_id": made.credential.system_id, "password": made.password}
        emit(data, as_json=as_json, text=f"system_id {data['system_id']}\n"
             f"password  {made.password}\n(the password is shown once)")
    with_runtime(work)


@smpp_credentials.command("list")
@click.option("--account", "account_id", required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(account_id: str, as_json: bool) -> None:
    """List an account's SMPP credentials."""
    async def work(rt: Runtime) -> None:
        async with rt.db.transaction(tenant=account_id, write=False) as session:
            rows = [{"id": c.id, "system_id": c.system_id, "name": c.name,
                     "revoked": c.revoked_at is not None}
                    for c in await list_credentials(session, tenant=account_id)]
        emit(rows, as_json=as_json, text="\n".join(
            f"{r['id']}\t{r['system_id']}\t{'revoked' if r['revoked'] else 'active'}"
            for r in rows) or "none")
    with_runtime(work)


@smpp_credentials.command("revoke")
@click.option("--account", "account_id", required=True)
@click.argument("credential_id")
def revoke(account_id: str, credential_id: str) -> None:
    """Revoke a credential; new binds with it are refused."""
    async def work(rt: Runtime) -> None:
        async with rt.db.transaction(tenant=account_id) as session:
            await do_revoke_credential(session, tenant=account_id, credential_id=credential_id,
                                       actor=operator_actor(), now=rt.clock.now())
        click.echo(f"SMPP credential {credential_id} revoked")
    with_runtime(work)
