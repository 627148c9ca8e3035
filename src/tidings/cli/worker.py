"""``tidings worker``: the outbox workers and the carriers, without the HTTP API.

The scale-out layout on PostgreSQL: ``tidings serve`` with ``TIDINGS_RUN_WORKERS=false``
(and ``TIDINGS_API_PROCESSES`` API processes) answers requests, and one ``tidings
worker`` dispatches, applies receipts and delivers webhooks. ``tidings worker --jobs
webhook.deliver`` beside it takes a share of one kind of job (claims skip each
other's rows) and runs no carriers. Nudges cross between them over PostgreSQL
``NOTIFY``. On SQLite such a webhook worker runs beside ``tidings serve`` (with
``TIDINGS_WEBHOOK_LOOPS=0`` to leave it every webhook), nudged over Unix
sockets. A worker answers ``/healthz`` and ``/metrics`` on its own port.
"""

from __future__ import annotations

import asyncio
import signal

import click
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from tidings.cli.common import warn_of_private_webhooks
from tidings.core.settings import Settings
from tidings.runtime import JOB_KINDS, Runtime, close_runtime, open_runtime
from tidings.webhooks.service import DELIVER_JOB


@click.command()
@click.option("--host", default=None, help="Listen address for /healthz and /metrics "
              "(TIDINGS_HOST).")
@click.option("--port", default=None, type=int,
              help="Port for /healthz and /metrics (TIDINGS_WORKER_PORT).")
@click.option("--jobs", "jobs", multiple=True, type=click.Choice(JOB_KINDS),
              help="Work only on these job kinds (repeat), beside a full worker: e.g. "
                   "--jobs webhook.deliver to give webhooks a process of their own. "
                   "Such a worker runs no carriers.")
def worker(host: str | None, port: int | None, jobs: tuple[str, ...]) -> None:
    """Run the outbox workers and the carrier connectors, without the HTTP API."""
    import uvloop

    from tidings.core.gc_tuning import tune_for_server
    from tidings.core.logs import configure_logging

    settings = Settings(run_workers=True)
    if jobs:
        settings = settings.model_copy(update={"worker_jobs": list(jobs)})
    if DELIVER_JOB in settings.worker_jobs and not settings.webhook_loops:
        raise click.UsageError("--jobs webhook.deliver with TIDINGS_WEBHOOK_LOOPS=0 would "
                               "deliver nothing: give this process at least one loop.")
    configure_logging(settings.log_level)
    warn_of_private_webhooks(settings)
    tune_for_server()
    uvloop.run(run_worker(settings, host or settings.host, port or settings.worker_port))


async def run_worker(settings: Settings, host: str, port: int) -> None:
    """Until SIGTERM or SIGINT; then finish the batches in hand and stop."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    rt = await open_runtime(settings)
    runner = web.AppRunner(_ops_app(rt), access_log=None)
    try:
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        await stopping.wait()
    finally:
        await runner.cleanup()
        await close_runtime(rt)


def _ops_app(rt: Runtime) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=rt.metrics.render(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app
