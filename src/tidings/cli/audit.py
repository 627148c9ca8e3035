"""``tidings audit``: check the tamper-evident trail."""

from __future__ import annotations

import sys

import click

from tidings.audit.service import seal_pending, verify
from tidings.cli.common import with_runtime
from tidings.runtime import Runtime


@click.group("audit")
def audit() -> None:
    """Inspect the audit trail."""


@audit.command("verify")
@click.option("--account", "account_id", default=None, help="Only this account's chain.")
def verify_command(account_id: str | None) -> None:
    """Seal pending events, then recompute every hash chain."""
    async def work(rt: Runtime) -> bool:
        await seal_pending(rt.db)
        report = await verify(rt.db, tenant=account_id)
        click.echo(f"chains: {report.tenants}, events: {report.sealed_events}, "
                   f"unsealed: {report.unsealed_events}")
        for problem in report.problems:
            click.echo(f"BROKEN {problem}")
        click.echo("ok" if report.ok else "audit trail has been altered")
        return report.ok
    sys.exit(0 if with_runtime(work) else 2)
