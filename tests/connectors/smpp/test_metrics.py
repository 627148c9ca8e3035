"""SMPP metrics (binds, window in use, submits by status, receipts) as /metrics shows them,
driven against the bundled SMSC simulator over real TCP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from prometheus_client.parser import text_string_to_metric_families

from tests.connectors.smpp.test_connector import Sinks, message, settings_for, until
from tidings.connectors.smpp.connector import SmppConnector
from tidings.connectors.smpp.simulator import SimulatorBehaviour, SmscSimulator
from tidings.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and sorted labels."""
    text = metrics.render().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


@contextlib.asynccontextmanager
async def running(behaviour: SimulatorBehaviour,
                  **changes: object) -> AsyncIterator[tuple[SmppConnector, SmscSimulator,
                                                            Sinks, Metrics]]:
    sim = SmscSimulator(behaviour)
    sim.port = await sim.start()  # type: ignore[attr-defined]
    sinks, metrics = Sinks(), Metrics()
    smpp = SmppConnector("smsc", settings_for(sim, **changes))
    metrics.watch_smpp(lambda: [("smsc", smpp.smpp_snapshot())], lambda: None)
    await smpp.start(sinks.take_reports, sinks.take_inbound)
    try:
        await until(lambda: len(smpp.bound_links) == 2, "both binds up")
        yield smpp, sim, sinks, metrics
    finally:
        await smpp.stop()
        await sim.stop()


BEHAVIOUR = SimulatorBehaviour(receipt_delay=0.02, system_id="tidings", password="secret")


async def test_binds_submits_by_status_and_receipts_are_counted() -> None:
    async with running(BEHAVIOUR) as (smpp, _, sinks, metrics):
        assert value(metrics, "tidings_smpp_binds", connector="smsc") == 2
        results = await smpp.submit([message("m_ok1"), message("m_ok2"),
                                     message("m_rej", to="+12025550103"),
                                     message("m_thr", to="+12025550104")])
        assert [r.outcome for r in results] == ["accepted", "accepted", "rejected",
                                                "accepted"]
        await until(lambda: len(sinks.reports) == 3, "three receipts")
        await until(lambda: value(metrics, "tidings_smpp_deliveries_total", connector="smsc",
                                  result="applied") == 3, "receipts counted")

        def submits(status: str) -> float | None:
            return value(metrics, "tidings_smpp_submits_total", connector="smsc",
                         status=status)
        assert submits("ESME_ROK") == 3
        assert submits("ESME_RINVDSTADR") == 1
        assert submits("ESME_RTHROTTLED") == 1
        assert value(metrics, "tidings_smpp_window_in_use", connector="smsc") == 0
        assert value(metrics, "tidings_smpp_deliveries_total", connector="smsc",
                     result="unmatched") == 0


async def test_the_window_in_use_shows_unanswered_submits_and_lost_ones_count() -> None:
    held = SimulatorBehaviour(system_id="tidings", password="secret", window_delay=3600)
    async with running(held) as (smpp, sim, _, metrics):
        sending = asyncio.create_task(smpp.submit([message(f"m_{i}") for i in range(5)]))
        await until(lambda: value(metrics, "tidings_smpp_window_in_use",
                                  connector="smsc") == 5, "five submits in the window")
        sim.disconnect_all()
        results = await sending
        assert {r.outcome for r in results} == {"retry"}
        assert value(metrics, "tidings_smpp_submits_total", connector="smsc",
                     status="no_answer") == 5
        await until(lambda: value(metrics, "tidings_smpp_window_in_use",
                                  connector="smsc") == 0, "the window empty again")
