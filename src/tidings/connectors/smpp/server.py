"""An SMPP server (SMSC side) on asyncio: accepts binds, hands traffic to a handler.

The handler decides who may bind and what a submit_sm means; the server keeps
the sessions, answers what the session answers by itself, and knows which
links are bound for each system_id, so deliver_sm can go back to a client.
It holds no business logic and no database (see ``tidings.smpp_gateway``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from tidings.connectors.smpp.link import Link
from tidings.connectors.smpp.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandStatus,
    Pdu,
)
from tidings.connectors.smpp.session import (
    BindRequested,
    Bound,
    Event,
    Session,
    SessionConfig,
)
from tidings.core.logs import get_logger

log = get_logger("tidings.smpp")
RECEIVING_MODES = frozenset({"receiver", "transceiver"})


@dataclass(frozen=True)
class BoundClient:
    """Who is on a link: the handler's grant (an account, say) and the bind mode."""

    system_id: str
    mode: str
    grant: object


class ServerHandler(Protocol):
    async def authenticate(self, system_id: str, password: str, peer: str) -> object | int:
        """A grant for a good bind, else the command_status to refuse it with; ``peer``
        is the client's address (to count failed binds by)."""
        ...

    async def on_request(self, client: BoundClient, link: Link, pdu: Pdu) -> None:
        """A submit_sm (or data_sm, query_sm) from a bound client; answer via ``link``."""
        ...

    def on_bound(self, client: BoundClient) -> None: ...


class SmppServer:
    def __init__(self, handler: ServerHandler, *, session: SessionConfig | None = None,
                 system_id: str = "tidings") -> None:
        self._handler = handler
        self._config = session or SessionConfig()
        self._system_id = system_id
        self._server: asyncio.Server | None = None
        self._clients: dict[Link, BoundClient] = {}
        self._links_by_system: defaultdict[str, set[Link]] = defaultdict(set)
        self._peers: dict[Link, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await asyncio.gather(*(link.unbind(timeout=2.0) for link in list(self._clients)),
                             return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def clients(self) -> list[tuple[Link, BoundClient]]:
        """Every bound link with who is on it."""
        return list(self._clients.items())

    def receiving_links(self, system_ids: set[str]) -> list[Link]:
        """Bound links of these system_ids that may receive deliver_sm."""
        return [link for system_id in system_ids for link in self._links_by_system[system_id]
                if not link.is_closed and self._clients[link].mode in RECEIVING_MODES]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        link = Link(Session("server", self._config, now=time.monotonic()), reader, writer,
                    on_request=self._on_request, on_event=self._on_event)
        self._peers[link] = _peer_address(writer)
        try:
            await link.run()
        finally:
            self._forget(link)
            if task is not None:
                self._tasks.discard(task)

    def _on_event(self, link: Link, event: Event) -> None:
        if isinstance(event, BindRequested):
            self._spawn(self._authenticate(link, event))
        elif isinstance(event, Bound):
            client = self._clients.get(link)
            if client is not None:
                self._handler.on_bound(client)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _authenticate(self, link: Link, event: BindRequested) -> None:
        pdu = event.pdu
        try:
            grant = await self._handler.authenticate(pdu.system_id, pdu.password,
                                                     self._peers.get(link, ""))
        except Exception:
            grant = CommandStatus.ESME_RSYSERR
        if isinstance(grant, int):
            link.reject_bind(grant)
            return
        client = BoundClient(pdu.system_id, _bind_mode(pdu), grant)
        self._clients[link] = client
        self._links_by_system[pdu.system_id].add(link)
        link.accept_bind(self._system_id)

    async def _on_request(self, link: Link, pdu: Pdu) -> None:
        client = self._clients.get(link)
        if client is None:  # the session refuses requests before a bind; belt and braces
            link.respond(pdu, CommandStatus.ESME_RINVBNDSTS)
            return
        try:
            await self._handler.on_request(client, link, pdu)
        except Exception:
            log.exception("smpp_request_failed", system_id=client.system_id)
            link.respond(pdu, CommandStatus.ESME_RSYSERR)

    def _forget(self, link: Link) -> None:
        self._peers.pop(link, None)
        client = self._clients.pop(link, None)
        if client is not None:
            self._links_by_system[client.system_id].discard(link)


def _peer_address(writer: asyncio.StreamWriter) -> str:
    """The client's IP address (without its port), or "" where there is none."""
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


def _bind_mode(pdu: BindTransmitter | BindReceiver | BindTransceiver) -> str:
    if isinstance(pdu, BindTransmitter):
        return "transmitter"
    return "receiver" if isinstance(pdu, BindReceiver) else "transceiver"
