"""Entry point: ``tidings serve``, ``tidings accounts …``, ``tidings send …``."""

from __future__ import annotations

import shutil
from typing import Any

import click
from pydantic import ValidationError

from tidings.cli.accounts import accounts, keys
from tidings.cli.audit import audit
from tidings.cli.connectors import connectors, operator_keys, routes
from tidings.cli.sandbox import sandbox
from tidings.cli.send import send
from tidings.cli.smpp_credentials import smpp_credentials
from tidings.cli.smsc_sim import smsc_sim
from tidings.cli.worker import worker
from tidings.metrics import share_between_processes
from tidings.runtime import prepare_storage
from tidings.settings import Settings


@click.group()
@click.version_option(package_name="tidings")
def cli() -> None:
    """Tidings: messaging for your clients, from one command."""


@cli.command()
@click.option("--host", default=None, help="Listen address (TIDINGS_HOST).")
@click.option("--port", default=None, type=int, help="Listen port (TIDINGS_PORT).")
@click.option("--processes", default=None, type=click.IntRange(1, 64),
              help="API processes (TIDINGS_API_PROCESSES); more than one needs PostgreSQL "
                   "and the workers in `tidings worker`.")
def serve(host: str | None, port: int | None, processes: int | None) -> None:
    """Run the API, the workers and the sandbox carrier in one process.

    With TIDINGS_RUN_WORKERS=false only the API runs; start `tidings worker` beside it.
    """
    import uvicorn

    from tidings.app import create_app
    from tidings.gc_tuning import tune_for_server
    from tidings.http_protocol import GuardedHttpProtocol, raise_open_files_limit
    from tidings.logs import configure_logging

    settings = Settings()
    processes = processes or settings.api_processes
    configure_logging(settings.log_level)
    raise_open_files_limit(settings.http_max_connections)
    options: dict[str, Any] = dict(
        host=host or settings.host, port=port or settings.port, access_log=False,
        log_level="warning", loop="uvloop", http=GuardedHttpProtocol,
        timeout_graceful_shutdown=10)
    if processes == 1:
        app = create_app(settings)
        tune_for_server()
        uvicorn.run(app, **options)
        return
    _check_processes(settings)
    prepare_storage(settings)  # once, before the processes race to migrate
    shared = share_between_processes(settings.data_dir)
    try:
        uvicorn.run("tidings.app:app_from_environment", factory=True, workers=processes,
                    **options)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def _check_processes(settings: Settings) -> None:
    if settings.is_sqlite:
        raise click.UsageError("Several API processes need PostgreSQL "
                               "(TIDINGS_DATABASE_URL): SQLite has a single writer.")
    if settings.run_workers:
        raise click.UsageError("With several API processes, run the workers apart: set "
                               "TIDINGS_RUN_WORKERS=false and start `tidings worker`.")


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date (serve does this too)."""
    from tidings.migrations.run import upgrade

    settings = Settings()
    if settings.is_sqlite:  # the default file's folder, on a fresh machine, as serve does
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url())
    click.echo("database is up to date")


for command in (accounts, keys, send, sandbox, audit, worker, connectors, routes,
                operator_keys, smsc_sim, smpp_credentials):
    cli.add_command(command)


def main() -> None:
    try:
        cli()
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        _report_bad_settings(exc)
        raise SystemExit(2) from None


def _report_bad_settings(exc: ValidationError) -> None:
    """One line per bad ``TIDINGS_*`` variable, without its value (it may be a secret)."""
    for error in exc.errors():
        name = "TIDINGS_" + "_".join(str(part) for part in error["loc"]).upper()
        click.echo(f"Error: {name}: {error['msg']}", err=True)
