"""What every command shares: a runtime without background work, output, actor.

Imports of the runtime happen inside the functions: ``tidings send`` uses ``fail``
and must not pay for them (see ``lazy.py``).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from pydantic import BaseModel

    from tidings.audit.service import Actor
    from tidings.core.settings import Settings
    from tidings.runtime import Runtime

T = TypeVar("T")
M = TypeVar("M", bound="BaseModel")


def operator_actor() -> Actor:
    from tidings.audit.service import Actor

    return Actor("operator", f"cli:{getpass.getuser()}")


def with_runtime(work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Open a runtime (migrated, no workers), run ``work``, close; errors become exit 1.

    The database must exist: only ``serve`` and ``migrate`` make one.
    """
    from tidings.core.settings import Settings
    from tidings.runtime import close_runtime, open_runtime
    from tidings.web.errors import TidingsError

    settings = Settings()
    require_database(settings)

    async def _main() -> T:
        rt = await open_runtime(settings, start_background=False)
        try:
            return await work(rt)
        finally:
            await close_runtime(rt)
    try:
        return asyncio.run(_main())
    except TidingsError as exc:
        fail(f"{exc.detail} ({exc.code})")
        raise  # unreachable: fail() exits


def require_database(settings: Settings) -> None:
    """Stop when the SQLite file is not there: opening it would make an empty one, and
    the command would work on that instead of the server's (run from another folder,
    the default ``./data`` is another folder's)."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    path = Path(url.database or "").resolve()
    if not path.is_file():
        fail(f"no database at {path}: run this where `tidings serve` runs, or set "
             "TIDINGS_DATA_DIR (or TIDINGS_DATABASE_URL) to the server's; "
             "`tidings migrate` makes a new one.")


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def validated(model: type[M], data: dict[str, Any]) -> M:
    """``data`` as the API's body ``model``, or exit naming each field that is wrong
    (pydantic imported here, so that a command's ``--help`` stays cheap)."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                       for e in exc.errors()))


def emit(data: Any, *, as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=2, default=str) if as_json else text)


def warn_of_private_webhooks(settings: Settings) -> None:
    """Say so at start when webhooks may reach loopback and private addresses: right
    for a development server, a risk anywhere tenants are not the operator."""
    if settings.webhook_allow_private:
        from tidings.core.logs import get_logger

        get_logger("tidings.webhooks").warning(
            "webhooks_to_private_addresses_allowed", setting="TIDINGS_WEBHOOK_ALLOW_PRIVATE",
            detail="tenants' webhooks may reach loopback and private networks; "
                   "development only")
