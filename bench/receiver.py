"""A webhook receiver that timestamps arrivals, for receipt-to-webhook latency."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from aiohttp import web


@dataclass
class Receiver:
    url: str = ""
    latencies_ms: list[float] = field(default_factory=list)  # delivered events only
    counts: dict[str, int] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.time()
        event = orjson.loads(await request.read())
        status = event["data"]["status"]
        self.counts[status] = self.counts.get(status, 0) + 1
        if status == "delivered":
            # created_at of the event = when the carrier's receipt was recorded
            recorded = datetime.fromisoformat(event["created_at"]).timestamp()
            self.latencies_ms.append((arrived - recorded) * 1000)
        return web.Response(text="ok")
