"""``tidings audit``: check the tamper-evident trail."""

from __future__ import annotations

import asyncio
import sys

import click

from tidings.audit.chain import AuditChain
from tidings.audit.verify import ChainReport, verify
from tidings.db import Database
from tidings.settings import Settings
from tidings.vault import Vault


@click.group("audit")
def audit() -> None:
    """Inspect the audit trail."""


@audit.command("verify")
@click.option("--account", "account_id", default=None, help="Only this account's chain.")
def verify_command(account_id: str | None) -> None:
    """Check every hash chain against the audit key and its checkpoint; writes nothing.

    Events not sealed yet are counted, not checked: the running server seals them.
    """
    report = asyncio.run(_verify(Settings(), account_id))
    click.echo(f"chains: {report.tenants}, events: {report.sealed_events}, "
               f"unsealed: {report.unsealed_events}")
    for problem in report.problems:
        click.echo(f"BROKEN {problem}")
    click.echo("ok" if report.ok else "audit trail has been altered")
    sys.exit(0 if report.ok else 2)


async def _verify(settings: Settings, account_id: str | None) -> ChainReport:
    # Not a runtime: that would migrate, seal and re-key; a check must change nothing.
    db = Database(settings.resolved_database_url())
    try:
        vault = await Vault.open(settings)
        try:
            return await verify(db, AuditChain.of(vault), tenant=account_id)
        finally:
            await vault.close()
    finally:
        await db.dispose()
