"""``tidings keys rotate``: new key-encryption keys, every key under them re-wrapped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import click

from tidings.cli.audit import require_keys
from tidings.core.settings import Settings
from tidings.storage.ciphers import VaultError
from tidings.storage.kek_rotation import SETTLE_SECONDS, Rotation, keyrings, rotate_kek
from tidings.storage.vault import Vault


@click.command("rotate")
@click.option("--account", "account_id", default=None, help="Only this account's keys.")
@click.option("--all", "every", is_flag=True, help="Every account's keys (and the platform's).")
@click.option("--settle-seconds", type=click.FloatRange(0, 3600), default=SETTLE_SECONDS,
              show_default=True,
              help="Wait this long after the switch before destroying the old key: a key "
                   "being made elsewhere under it in that instant is moved too.")
def rotate_command(account_id: str | None, every: bool, settle_seconds: float) -> None:
    """Rotate key-encryption keys: a new one per account, every data and subject key
    re-wrapped under it, the old one destroyed. No message is read or rewritten, and the
    server may keep running."""
    if (account_id is None) == (not every):
        raise click.UsageError("give --account ID or --all")
    settings = Settings()
    require_keys(settings)
    try:
        asyncio.run(_rotate(settings, account_id, settle_seconds))
    except VaultError as exc:
        raise click.ClickException(str(exc)) from None


async def _rotate(settings: Settings, account_id: str | None, settle_seconds: float) -> None:
    vault = await Vault.open(settings)
    try:
        tenants = [account_id] if account_id else await keyrings(vault)
        for tenant in tenants:
            click.echo(_line(await rotate_kek(vault, tenant, progress=_progress(tenant),
                                              settle_seconds=settle_seconds)))
    finally:
        await vault.close()


def _progress(tenant: str) -> Callable[[int], None]:
    def show(count: int) -> None:
        click.echo(f"{tenant}: {count} keys re-wrapped so far", err=True)
    return show


def _line(done: Rotation) -> str:
    destroyed = ", ".join(str(v) for v in done.destroyed) or "none"
    return (f"{done.tenant_id}: key-encryption key {done.active} active, "
            f"{done.rewrapped} keys re-wrapped, destroyed: {destroyed}")
