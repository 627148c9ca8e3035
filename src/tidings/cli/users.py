"""``tidings users``: people who log in to an account."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from tidings.cli.common import emit, operator_actor, with_runtime

if TYPE_CHECKING:
    from tidings.runtime import Runtime


@click.group("users")
def users() -> None:
    """People who log in to an account, with a role."""


@users.command("create")
@click.option("--account", "account_id", help="The account the user belongs to.")
@click.option("--operator", "staff", is_flag=True,
              help="A member of the operator's staff, of no account (role: operator).")
@click.option("--email", required=True, help="The address the user logs in with.")
@click.option("--role", required=True,
              help="owner, admin, developer, billing, compliance, analyst or support; "
                   "operator with --operator.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create(account_id: str | None, staff: bool, email: str, role: str, as_json: bool) -> None:
    """Create a user with a temporary password (shown once, valid 72 hours, to be
    changed at the first login). Give it to the person by another channel than the
    address itself. Staff must enrol a second factor before the operator API takes them."""
    from tidings.users.service import create_user

    if (account_id is None) == (not staff):
        raise click.UsageError("Give either --account acc_… or --operator.")

    async def work(rt: Runtime) -> None:
        made = await create_user(rt, account_id=account_id, email=email, role=role,
                                 actor=operator_actor())
        data = {"id": made.id, "account_id": made.account_id, "email": made.email,
                "role": made.role, "temporary_password": made.temporary_password,
                "expires_at": made.expires_at.isoformat()}
        emit(data, as_json=as_json, text="\n".join(f"{k}: {v}" for k, v in data.items()))
    with_runtime(work)


@users.command("list")
@click.option("--account", "account_id", required=True, help="The account whose users to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(account_id: str, as_json: bool) -> None:
    """List an account's users, oldest first."""
    from tidings.users.service import list_users

    async def work(rt: Runtime) -> None:
        found = await list_users(rt, account_id=account_id)
        data = [{"id": u.id, "email": u.email, "role": u.role, "status": u.status,
                 "mfa_enabled": u.mfa_enabled, "must_change_password": u.must_change_password,
                 "created_at": u.created_at.isoformat()} for u in found]
        emit(data, as_json=as_json, text="\n".join(
            f"{u['id']}  {u['role']:<11} {u['status']:<9} {u['email']}" for u in data)
            or "no users")
    with_runtime(work)
