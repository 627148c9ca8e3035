"""Entry point: ``tidings serve``, ``tidings accounts …``, ``tidings send …``."""

from __future__ import annotations

import click

from tidings.cli.accounts import accounts, keys
from tidings.cli.audit import audit
from tidings.cli.sandbox import sandbox
from tidings.cli.send import send
from tidings.settings import Settings


@click.group()
@click.version_option(package_name="tidings")
def cli() -> None:
    """Tidings: messaging for your clients, from one command."""


@cli.command()
@click.option("--host", default=None, help="Listen address (TIDINGS_HOST).")
@click.option("--port", default=None, type=int, help="Listen port (TIDINGS_PORT).")
def serve(host: str | None, port: int | None) -> None:
    """Run the API, the workers and the sandbox carrier in one process."""
    import uvicorn

    from tidings.app import create_app
    from tidings.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port,
                access_log=False, log_level="warning", loop="uvloop", http="httptools",
                timeout_graceful_shutdown=10)


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date (serve does this too)."""
    from tidings.migrations.run import upgrade

    upgrade(Settings().resolved_database_url())
    click.echo("database is up to date")


for command in (accounts, keys, send, sandbox, audit):
    cli.add_command(command)


def main() -> None:
    cli()
