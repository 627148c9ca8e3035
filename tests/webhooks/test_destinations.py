"""The destination policy, and the client connecting only to addresses it checked."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import structlog
import structlog.testing

from tidings.cli.common import warn_of_private_webhooks
from tidings.core.settings import Settings
from tidings.webhooks.destinations import DestinationPolicy, RefusedDestination
from tidings.webhooks.http1 import Http1Client

STRICT, LOCAL = DestinationPolicy(), DestinationPolicy(allow_private=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "2130706433", "0x7f000001",
                                  "0177.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "localhost",
                                  "0.0.0.0", "10.0.0.1", "[fd00::1]", "192.168.1.1"])
def test_loopback_and_private_hosts_only_when_allowed(host: str) -> None:
    with pytest.raises(RefusedDestination):
        STRICT.check_host(host)
    LOCAL.check_host(host)


@pytest.mark.parametrize("host", ["169.254.169.254", "[fe80::1]", "metadata.google.internal",
                                  "Metadata.Google.Internal.", "[::ffff:169.254.169.254]",
                                  "[fd00:ec2::254]", "224.0.0.1"])
def test_link_local_metadata_and_multicast_hosts_never(host: str) -> None:
    for policy in (STRICT, LOCAL):
        with pytest.raises(RefusedDestination):
            policy.check_host(host)


@pytest.mark.parametrize("host", ["93.184.216.34", "[2606:2800:220:1::1]", "example.com"])
def test_public_hosts_and_names_pass_the_save_time_check(host: str) -> None:
    STRICT.check_host(host)


@pytest.fixture
async def peer() -> AsyncIterator[tuple[int, list[bytes]]]:
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            heads.append(head)
            await reader.readexactly(int(head.split(b"Content-Length: ")[1].split(b"\r")[0]))
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], heads
    server.close()


async def test_the_address_checked_is_the_address_connected_to(
        peer: tuple[int, list[bytes]], monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name answers a permitted address to the check, then a refused
    one. The client resolves once per connection and connects to what it checked; the
    next connection sees the new answer and is refused before any connect."""
    port, heads = peer
    answers = ["127.0.0.1", "169.254.169.254", "169.254.169.254"]
    asked: list[str] = []

    async def rebinding(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers.pop(0), port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", rebinding)
    client = Http1Client(max_idle=0, keepalive_seconds=30, response_limit=1024,
                         destinations=LOCAL)
    try:
        first = await client.post(f"http://hooks.test:{port}/a", b"x", {}, timeout=5)
        with pytest.raises(RefusedDestination, match="metadata"):
            await client.post(f"http://hooks.test:{port}/b", b"x", {}, timeout=5)
    finally:
        await client.close()
    assert first.status == 204
    assert asked == ["hooks.test", "hooks.test"]
    assert [h.split(b" ")[1] for h in heads] == [b"/a"]


def test_serve_says_when_private_webhooks_are_allowed() -> None:
    # Captured as events, not from stderr: configuring the real logging here would bind
    # every logger of the test process to this test's captured stream.
    with structlog.testing.capture_logs() as logs:
        warn_of_private_webhooks(Settings(webhook_allow_private=False))
    assert logs == []
    with structlog.testing.capture_logs() as logs:
        warn_of_private_webhooks(Settings(webhook_allow_private=True))
    assert [(e["event"], e["log_level"], e["setting"]) for e in logs] == [
        ("webhooks_to_private_addresses_allowed", "warning", "TIDINGS_WEBHOOK_ALLOW_PRIVATE")]
