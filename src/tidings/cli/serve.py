"""``tidings serve`` and ``tidings migrate``."""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import uvicorn

if TYPE_CHECKING:
    from tidings.core.settings import Settings

STARTUP_FAILURE = 3  # uvicorn's exit code when the server could not start


@click.command()
@click.option("--host", default=None, help="Listen address (TIDINGS_HOST).")
@click.option("--port", default=None, type=int, help="Listen port (TIDINGS_PORT).")
@click.option("--processes", default=None, type=click.IntRange(1, 64),
              help="API processes (TIDINGS_API_PROCESSES); more than one needs PostgreSQL "
                   "and the workers in `tidings worker`.")
def serve(host: str | None, port: int | None, processes: int | None) -> None:
    """Run the API, the workers and the sandbox carrier in one process.

    With TIDINGS_RUN_WORKERS=false only the API runs; start `tidings worker` beside it.
    """
    from tidings.app import create_app
    from tidings.cli.common import warn_of_private_webhooks
    from tidings.core.gc_tuning import tune_for_server
    from tidings.core.logs import configure_logging
    from tidings.core.settings import Settings
    from tidings.metrics import share_between_processes
    from tidings.runtime import prepare_storage
    from tidings.web.http_protocol import GuardedHttpProtocol, raise_open_files_limit

    settings = Settings()
    processes = processes or settings.api_processes
    configure_logging(settings.log_level)
    raise_open_files_limit(settings.http_max_connections)
    warn_of_private_webhooks(settings)
    options: dict[str, Any] = dict(
        host=host or settings.host, port=port or settings.port, access_log=False,
        log_level="warning", loop="uvloop", http=GuardedHttpProtocol,
        timeout_graceful_shutdown=10)
    if processes == 1:
        server = _AnnouncingServer(uvicorn.Config(create_app(settings), **options), settings)
        tune_for_server()
        server.run()
        if not server.started:  # uvicorn has logged why (e.g. the port is taken)
            sys.exit(STARTUP_FAILURE)
        return
    _check_processes(settings)
    prepare_storage(settings)  # once, before the processes race to migrate
    click.echo(f"Tidings: {processes} API processes start on "
               f"{_url(options['host'], options['port'])}, {_storage(settings)}")
    shared = share_between_processes(settings.data_dir)
    try:
        uvicorn.run("tidings.app:app_from_environment", factory=True, workers=processes,
                    **options)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


class _AnnouncingServer(uvicorn.Server):
    """Says where it listens once it does, with its database: uvicorn's own line is
    logged at INFO, which ``serve`` leaves out."""

    def __init__(self, config: uvicorn.Config, settings: Settings) -> None:
        super().__init__(config)
        self.settings = settings

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            port = self.servers[0].sockets[0].getsockname()[1] if self.servers \
                else self.config.port
            click.echo(f"Tidings listens on {_url(self.config.host, port)}, "
                       f"{_storage(self.settings)}; Ctrl+C stops it.")


def _url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _storage(settings: Settings) -> str:
    """Where the data is, for the CLI elsewhere to find (TIDINGS_DATA_DIR)."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() == "sqlite":
        return f"database {Path(url.database or '').resolve()}"
    return f"database {url.render_as_string(hide_password=True)}"


def _check_processes(settings: Settings) -> None:
    if settings.is_sqlite:
        raise click.UsageError("Several API processes need PostgreSQL "
                               "(TIDINGS_DATABASE_URL): SQLite has a single writer.")
    if settings.run_workers:
        raise click.UsageError("With several API processes, run the workers apart: set "
                               "TIDINGS_RUN_WORKERS=false and start `tidings worker`.")


@click.command()
def migrate() -> None:
    """Bring the database schema up to date (serve does this too)."""
    from tidings.core.settings import Settings
    from tidings.runtime import migrate as migrate_database
    from tidings.storage.files import make_storage_private

    settings = Settings()
    make_storage_private(settings)  # the default file's folder, private, as serve does
    migrate_database(settings)
    click.echo("database is up to date")


