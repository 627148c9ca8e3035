"""The HTTP API that steers a running SMSC simulator (``ControlServer``).

JSON, every error a 400 with ``{"error": "..."}``:

* ``POST /mo`` ``{"from": "+12025550173", "to": "+12025550199", "body": "Hi",
  "system_id": "optional"}``: sends a mobile-originated message; 202 ``{"parts": n}``.
* ``GET /stats``: the counters of ``SmscSimulator.stats``.
* ``GET /submits``: the recent accepted submits, oldest first.
* ``POST /disconnect``: drops every connection; 200 ``{"disconnected": n}``.

It sits above ``simulator``, which knows nothing of it: the imports go one way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web

from tidings.connectors.smpp.simulator import SmscSimulator

_MO_FIELDS = ("from", "to", "body", "system_id")


@dataclass(frozen=True)
class MoRequest:
    """The body of ``POST /mo``."""

    sender: str
    to: str
    body: str
    system_id: str | None = None


def parse_mo_request(data: object) -> MoRequest:
    """``POST /mo``'s decoded JSON as a request; ``ValueError`` saying what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    unknown = sorted(str(name) for name in data if name not in _MO_FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    for name in ("from", "to", "body"):
        if not isinstance(data.get(name), str):
            raise ValueError(f"'{name}' is required and must be a string")
    system_id = data.get("system_id")
    if system_id is not None and not isinstance(system_id, str):
        raise ValueError("'system_id' must be a string or null")
    return MoRequest(data["from"], data["to"], data["body"], system_id)


def control_app(simulator: SmscSimulator) -> web.Application:
    """The aiohttp application of the control API over ``simulator``."""

    async def post_mo(request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read())
        except (ValueError, RecursionError) as error:  # bad UTF-8 is a ValueError too
            return _bad_request(f"the body is not JSON: {error}")
        try:
            mo = parse_mo_request(data)
            parts = simulator.inject_mo(mo.sender, mo.to, mo.body, system_id=mo.system_id)
        except ValueError as error:
            return _bad_request(str(error))
        return web.json_response({"parts": parts}, status=202)

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(simulator.stats())

    async def get_submits(request: web.Request) -> web.Response:
        return web.json_response([record.to_json() for record in simulator.submits])

    async def post_disconnect(request: web.Request) -> web.Response:
        return web.json_response({"disconnected": simulator.disconnect_all()})

    app = web.Application()
    app.add_routes([web.post("/mo", post_mo), web.get("/stats", get_stats),
                    web.get("/submits", get_submits), web.post("/disconnect", post_disconnect)])
    return app


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


class ControlServer:
    """Serves the control API of ``simulator`` over HTTP (``start``, then ``close``)."""

    def __init__(self, simulator: SmscSimulator) -> None:
        self._runner = web.AppRunner(control_app(simulator), access_log=None)

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> int:
        """Listens on ``host``:``port`` (0: a free port); returns the port it got."""
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        address = self._runner.addresses[0]
        return int(address[1])

    async def close(self) -> None:
        await self._runner.cleanup()
