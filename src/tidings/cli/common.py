"""What every command shares: a runtime without background work, output, actor."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import click

from tidings.audit.service import Actor
from tidings.errors import TidingsError
from tidings.runtime import Runtime, close_runtime, open_runtime
from tidings.settings import Settings

T = TypeVar("T")


def operator_actor() -> Actor:
    return Actor("operator", f"cli:{getpass.getuser()}")


def with_runtime(work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Open a runtime (migrated, no workers), run ``work``, close; errors become exit 1."""
    async def _main() -> T:
        rt = await open_runtime(Settings(), start_background=False)
        try:
            return await work(rt)
        finally:
            await close_runtime(rt)
    try:
        return asyncio.run(_main())
    except TidingsError as exc:
        fail(f"{exc.detail} ({exc.code})")
        raise  # unreachable: fail() exits


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def emit(data: Any, *, as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=2, default=str) if as_json else text)


def warn_of_private_webhooks(settings: Settings) -> None:
    """Say so at start when webhooks may reach loopback and private addresses: right
    for a development server, a risk anywhere tenants are not the operator."""
    if settings.webhook_allow_private:
        from tidings.logs import get_logger

        get_logger("tidings.webhooks").warning(
            "webhooks_to_private_addresses_allowed", setting="TIDINGS_WEBHOOK_ALLOW_PRIVATE",
            detail="tenants' webhooks may reach loopback and private networks; "
                   "development only")
