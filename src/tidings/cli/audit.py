"""``tidings audit``: check the tamper-evident trail."""

from __future__ import annotations

import asyncio
import sys

import click

from tidings.audit.chain import AuditChain
from tidings.audit.verify import ChainReport, verify
from tidings.cli.common import fail, require_database
from tidings.core.settings import Settings
from tidings.storage.db import Database
from tidings.storage.vault import MASTER_KEY_FILE, Vault


@click.group("audit")
def audit() -> None:
    """Inspect the audit trail."""


@audit.command("verify")
@click.option("--account", "account_id", default=None, help="Only this account's chain.")
def verify_command(account_id: str | None) -> None:
    """Check every hash chain against the audit key and its checkpoint; writes nothing.

    Events not sealed yet are counted, not checked: the running server seals them.
    """
    settings = Settings()
    require_database(settings)
    require_keys(settings)
    report = asyncio.run(_verify(settings, account_id))
    click.echo(f"chains: {report.tenants}, events: {report.sealed_events}, "
               f"unsealed: {report.unsealed_events}")
    for problem in report.problems:
        click.echo(f"BROKEN {problem}")
    click.echo("ok" if report.ok else "audit trail has been altered")
    sys.exit(0 if report.ok else 2)


def require_keys(settings: Settings) -> None:
    """The server's keys, or a clear refusal: a fresh key would call every chain altered."""
    key_file = settings.resolved_key_dir() / MASTER_KEY_FILE
    if not settings.master_key and not key_file.is_file():
        fail(f"no master key at {key_file}: run this with the server's TIDINGS_KEY_DIR "
             "(or TIDINGS_MASTER_KEY) and TIDINGS_KEYSTORE_URL")


async def _verify(settings: Settings, account_id: str | None) -> ChainReport:
    # Not a runtime: that would migrate, seal and re-key; a check must change nothing.
    db = Database(settings.resolved_database_url(),
                  system_url=settings.resolved_system_database_url())
    try:
        vault = await Vault.open(settings)
        try:
            return await verify(db, AuditChain.of(vault), tenant=account_id)
        finally:
            await vault.close()
    finally:
        await db.dispose()
