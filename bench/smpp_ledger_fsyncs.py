"""How many commits (one fsync each) the SMPP connector's ledger makes per message.

Counts, not times: the connector submits to the in-process simulator (2 binds, window
100) either in batches like the dispatcher's (two loops of 200-message batches) or one
message at a time (nothing to group with), and prints the ledger's commits per
message. Run under ``strace -f -c -e trace=fsync,fdatasync`` to count the system
calls themselves (the file's opening and closing add a few).

    python -m bench.smpp_ledger_fsyncs batches|single
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tidings.connectors.base import DeliveryReport, OutboundMessage, refuse_inbound
from tidings.connectors.smpp.connector import SmppConnector, SmppSettings
from tidings.connectors.smpp.simulator import SimulatorBehaviour, SmscSimulator

BATCH, LOOPS = 200, 2
MESSAGES = {"batches": 2_000, "single": 200}


async def take_all(_name: str, reports: Sequence[DeliveryReport]) -> list[bool]:
    return [True] * len(reports)


def messages(count: int) -> list[OutboundMessage]:
    return [OutboundMessage(f"msg_{i}", "sms", f"+1303555{i:04d}", "Acme", f"Hello {i}",
                            "GSM-7", 1) for i in range(count)]


async def submit_all(smpp: SmppConnector, mode: str) -> None:
    todo = messages(MESSAGES[mode])
    if mode == "single":
        for message in todo:
            await smpp.submit([message])
        return

    async def loop(share: list[OutboundMessage]) -> None:
        for start in range(0, len(share), BATCH):
            await smpp.submit(share[start:start + BATCH])

    await asyncio.gather(*(loop(todo[n::LOOPS]) for n in range(LOOPS)))


async def measure(mode: str) -> None:
    simulator = SmscSimulator(SimulatorBehaviour(receipt_delay=0.05))
    port = await simulator.start()
    settings = SmppSettings(host="127.0.0.1", port=port, system_id="bench", binds=2,
                            window=100)
    with tempfile.TemporaryDirectory() as folder:
        smpp = SmppConnector("smsc", settings, ledger_path=Path(folder) / "ledger.db",
                             match_key=bytes(32))
        await smpp.start(take_all, refuse_inbound)
        while len(smpp.bound_links) < settings.binds:
            await asyncio.sleep(0.01)
        await submit_all(smpp, mode)
        commits = smpp.ledger_commits
        await smpp.stop()
    await simulator.stop()
    count = MESSAGES[mode]
    print(f"{mode}: {count} messages, {commits} ledger commits, "
          f"{commits / count:.4f} per message")


if __name__ == "__main__":
    asyncio.run(measure(sys.argv[1] if len(sys.argv) > 1 else "batches"))
