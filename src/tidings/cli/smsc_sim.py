"""``tidings smsc-sim``: run the bundled SMSC simulator until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # imported when the command runs, so that `tidings --help` stays quick
    from tidings.connectors.smpp.simulator import SimulatorBehaviour

CONTROL_HOST = "127.0.0.1"  # the control API can drop binds: never on a public address
_PORT = click.IntRange(0, 65535)
_SECONDS = click.FloatRange(min=0)
_RATIO = click.FloatRange(0, 1)


@click.command("smsc-sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="SMPP listen address.")
@click.option("--port", type=_PORT, default=2775, show_default=True,
              help="SMPP listen port (0: any free port, printed).")
@click.option("--system-id", default=None, help="Require this system_id (default: any).")
@click.option("--password", default=None, help="Require this password (default: any).")
@click.option("--receipt-delay", type=_SECONDS, default=0.2, show_default=True,
              help="Seconds from submit_sm_resp to the delivery receipt.")
@click.option("--receipt-retry-delay", type=click.FloatRange(min=0, min_open=True),
              default=5.0, show_default=True,
              help="Seconds before an unacknowledged receipt or MO is sent again.")
@click.option("--throttle-ratio", type=_RATIO, default=0.0, show_default=True,
              help="Fraction of submits answered ESME_RTHROTTLED.")
@click.option("--reject-ratio", type=_RATIO, default=0.0, show_default=True,
              help="Fraction of submits answered ESME_RINVDSTADR (a permanent reject).")
@click.option("--disconnect-after", type=click.IntRange(min=0), default=0, show_default=True,
              help="Drop a bind at its Nth submit, unanswered (0: never).")
@click.option("--window-delay", type=_SECONDS, default=0.0, show_default=True,
              help="Seconds to hold every submit_sm_resp back.")
@click.option("--seed", type=int, default=1, show_default=True,
              help="Seed of the throttle and reject draws.")
@click.option("--control-port", type=_PORT, default=None,
              help=f"Serve the HTTP control API on {CONTROL_HOST}:PORT (default: off).")
def smsc_sim(host: str, port: int, system_id: str | None, password: str | None,
             receipt_delay: float, receipt_retry_delay: float, throttle_ratio: float,
             reject_ratio: float, disconnect_after: int, window_delay: float, seed: int,
             control_port: int | None) -> None:
    """Run an SMPP 3.4 SMSC simulator for development, tests and benchmarks.

    Destinations ending in 5550100..5550105 get set outcomes (undelivered, rejected,
    expired, refused, throttled once, no receipt); see
    tidings.connectors.smpp.simulator. Prints where it listens, and on SIGINT or SIGTERM
    unbinds its clients and prints the final counters as one JSON line.
    """
    from tidings.connectors.smpp.simulator import SimulatorBehaviour

    try:
        behaviour = SimulatorBehaviour(
            system_id=system_id, password=password, receipt_delay=receipt_delay,
            receipt_retry_delay=receipt_retry_delay, throttle_ratio=throttle_ratio,
            reject_ratio=reject_ratio, disconnect_after=disconnect_after,
            window_delay=window_delay, seed=seed)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    _run_loop(_serve(behaviour, host, port, control_port))


async def _serve(behaviour: SimulatorBehaviour, host: str, port: int,
                 control_port: int | None) -> None:
    from tidings.connectors.smpp.simulator import SmscSimulator
    from tidings.connectors.smpp.simulator_http import ControlServer

    simulator = SmscSimulator(behaviour)
    control: ControlServer | None = None
    try:
        port = await simulator.start(host, port)
        where = f"smsc-sim: SMPP on {host}:{port}"
        if control_port is not None:
            control = ControlServer(simulator)
            control_port = await control.start(control_port, CONTROL_HOST)
            where += f", control API on http://{CONTROL_HOST}:{control_port}"
    except OSError as error:
        await simulator.stop()
        raise click.ClickException(f"cannot listen: {error}") from None
    click.echo(where)
    await _signalled()
    if control is not None:
        await control.close()
    await simulator.stop()
    click.echo(json.dumps(simulator.stats()))


async def _signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Runs ``main`` on uvloop when it is installed: the simulator is the far end of our
    benchmarks, and uvloop lets one core answer some 10% more."""
    try:
        import uvloop
    except ImportError:
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main)
