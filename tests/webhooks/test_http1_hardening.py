"""The webhook client: one TLS context, a bounded response head, IDNA hosts and
percent-encoded paths, and the operator's outgoing proxy (CONNECT for https, absolute
form for http, NO_PROXY), with the destination check applied through it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import trustme

from tests.webhooks.test_http1 import LIMIT, LOCAL, Peer, answer, read_request
from tidings.webhooks import http1
from tidings.webhooks.destinations import DestinationPolicy, RefusedDestination
from tidings.webhooks.http1 import (
    Http1Client,
    Origin,
    ProxyError,
    ResponseHeadTooLarge,
    Target,
    split_url,
)
from tidings.webhooks.proxies import Proxies
from tidings.webhooks.sender import describe_error

NO_PROXY = Proxies({})


def client(**kwargs: object) -> Http1Client:
    options: dict[str, object] = {"max_idle": 4, "keepalive_seconds": 30,
                                  "response_limit": LIMIT, "destinations": LOCAL,
                                  "proxies": NO_PROXY}
    return Http1Client(**(options | kwargs))  # type: ignore[arg-type]


async def echo_target(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers 204 to each request and keeps its head in ``HEADS``."""
    while not reader.at_eof():
        try:
            head, _ = await read_request(reader)
        except asyncio.IncompleteReadError:
            return
        HEADS.append(head)
        writer.write(answer(204, b""))
        await writer.drain()


HEADS: list[bytes] = []


@pytest.fixture(autouse=True)
def _fresh_heads() -> None:
    HEADS.clear()


@pytest.fixture
def authority() -> trustme.CA:
    return trustme.CA()


async def tls_peer(authority: trustme.CA, name: str) -> Peer:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(name).configure_cert(server_context)
    return await Peer(echo_target).start(server_context)


async def test_one_tls_context_serves_every_connection(
        authority: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[ssl.SSLContext] = []
    original = ssl.create_default_context

    def counted(*args: object, **kwargs: object) -> ssl.SSLContext:
        context = original()
        authority.configure_trust(context)
        made.append(context)
        return context

    peer = await tls_peer(authority, "127.0.0.1")
    monkeypatch.setattr(ssl, "create_default_context", counted)
    http1.default_tls_context.cache_clear()
    closing = client(max_idle=0)  # every request on a new connection
    try:
        for _ in range(3):
            response = await closing.post(peer.url(scheme="https"), b"{}", {}, timeout=5)
            assert response.status == 204
    finally:
        await closing.close()
        await peer.stop()
        http1.default_tls_context.cache_clear()
    assert peer.connections == 3
    assert len(made) == 1


async def test_a_response_head_past_64_kib_fails_the_attempt() -> None:
    async def huge_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(200):  # 8 MB of headers unless the client hangs up
                writer.write(b"X-Padding: " + b"a" * 40_000 + b"\r\n")
                await writer.drain()

    peer = await Peer(huge_head).start()
    made = client()
    try:
        with pytest.raises(ResponseHeadTooLarge) as failed:
            await made.post(peer.url(), b"{}", {}, timeout=5)
    finally:
        await made.close()
        await peer.stop()
    assert describe_error(failed.value) == "response headers too large (over 64 KiB)"


def test_hosts_go_out_as_idna_and_paths_percent_encoded() -> None:
    assert split_url("https://Bücher.example/ünï/a%20b?q=ü&r=%2F") == Target(
        Origin("https", "xn--bcher-kva.example", 443), "/%C3%BCn%C3%AF/a%20b?q=%C3%BC&r=%2F",
        None)
    assert Origin("https", "xn--bcher-kva.example", 8443).host_header == \
        "xn--bcher-kva.example:8443"


async def test_a_non_ascii_url_is_sent_encoded_to_the_idna_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    peer = await Peer(echo_target).start()
    asked: list[str] = []

    async def resolve(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolve)
    made = client()
    try:
        response = await made.post(f"http://bücher.test:{peer.port}/hook/ünï?q=é", b"{}", {},
                                   timeout=5)
    finally:
        await made.close()
        await peer.stop()
    assert response.status == 204
    assert asked == ["xn--bcher-kva.test"]
    assert HEADS[0].startswith(b"POST /hook/%C3%BCn%C3%AF?q=%C3%A9 HTTP/1.1\r\n"
                               + f"Host: xn--bcher-kva.test:{peer.port}\r\n".encode())


@dataclass
class TinyProxy:
    """An HTTP proxy on loopback: CONNECT opens a tunnel to 127.0.0.1 at the asked
    port; any other request is answered by the proxy itself (204)."""

    refuse_with: int | None = None
    requests: list[bytes] = field(default_factory=list)  # the heads it was sent
    port: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return
        self.requests.append(head)
        if not head.startswith(b"CONNECT "):
            await read_request_body(reader, head)
            writer.write(answer(204, b""))
            await writer.drain()
            writer.close()
            return
        if self.refuse_with:
            writer.write(b"HTTP/1.1 %d No\r\nContent-Length: 0\r\n\r\n" % self.refuse_with)
            writer.close()
            return
        port = int(head.split(b" ")[1].rsplit(b":", 1)[1])
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def read_request_body(reader: asyncio.StreamReader, head: bytes) -> None:
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    await reader.readexactly(length)


async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    sink.close()


@pytest.fixture
async def proxy() -> AsyncIterator[TinyProxy]:
    made = TinyProxy()
    server = await asyncio.start_server(made.serve, "127.0.0.1", 0)
    made.port = server.sockets[0].getsockname()[1]
    yield made
    server.close()


@pytest.fixture
async def hooks_test_is_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """``hooks.test`` resolves to 127.0.0.1 (the client still checks it by proxy)."""
    async def resolve(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        assert host == "hooks.test"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolve)


@pytest.mark.usefixtures("hooks_test_is_loopback")
async def test_https_goes_through_a_connect_tunnel_with_tls_to_the_webhook_host(
        proxy: TinyProxy, authority: trustme.CA) -> None:
    peer = await tls_peer(authority, "hooks.test")
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    proxies = Proxies({"https": f"http://ops:s%40cret@127.0.0.1:{proxy.port}"})
    made = client(ssl_context=trusting, proxies=proxies)
    try:
        for _ in range(2):
            response = await made.post(f"https://hooks.test:{peer.port}/hook", b"{}", {},
                                       timeout=5)
            assert response.status == 204
    finally:
        await made.close()
        await peer.stop()
    [connect] = proxy.requests  # one tunnel, kept alive for both
    assert connect.startswith(b"CONNECT hooks.test:%d HTTP/1.1\r\n" % peer.port)
    assert b"Proxy-Authorization: Basic b3BzOnNAY3JldA==\r\n" in connect  # ops:s@cret
    assert [h.split(b"\r\n")[0] for h in HEADS] == [b"POST /hook HTTP/1.1"] * 2


@pytest.mark.usefixtures("hooks_test_is_loopback")
async def test_http_goes_to_the_proxy_in_absolute_form(proxy: TinyProxy) -> None:
    made = client(proxies=Proxies({"http": f"127.0.0.1:{proxy.port}"}))
    try:
        response = await made.post("http://hooks.test:8080/hook?a=1", b"{}", {}, timeout=5)
    finally:
        await made.close()
    assert response.status == 204
    [request] = proxy.requests
    assert request.startswith(b"POST http://hooks.test:8080/hook?a=1 HTTP/1.1\r\n"
                              b"Host: hooks.test:8080\r\n")
    assert b"Proxy-Authorization" not in request


async def test_a_name_only_the_proxy_can_resolve_goes_through_it(
        proxy: TinyProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_dns(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_dns)
    made = client(destinations=DestinationPolicy(),
                  proxies=Proxies({"http": f"http://127.0.0.1:{proxy.port}"}))
    try:
        response = await made.post("http://hooks.example.com/hook", b"{}", {}, timeout=5)
        with pytest.raises(RefusedDestination):  # the checks without DNS still hold
            await made.post("http://metadata.google.internal/x", b"{}", {}, timeout=5)
    finally:
        await made.close()
    assert response.status == 204
    assert [r.split(b"\r\n")[0] for r in proxy.requests] == [
        b"POST http://hooks.example.com/hook HTTP/1.1"]


async def test_a_proxy_that_refuses_the_tunnel_is_a_clear_failure(proxy: TinyProxy) -> None:
    proxy.refuse_with = 407
    made = client(proxies=Proxies({"https": f"http://127.0.0.1:{proxy.port}"}))
    try:
        with pytest.raises(ProxyError) as refused:
            await made.post("https://127.0.0.1:9/hook", b"{}", {}, timeout=5)
    finally:
        await made.close()
    assert describe_error(refused.value) == "proxy error: the proxy answered 407 to CONNECT"


async def test_the_destination_check_applies_through_a_proxy(proxy: TinyProxy) -> None:
    made = client(destinations=DestinationPolicy(),
                  proxies=Proxies({"http": f"http://127.0.0.1:{proxy.port}"}))
    try:
        with pytest.raises(RefusedDestination):
            await made.post("http://127.0.0.1:9/hook", b"{}", {}, timeout=5)
        with pytest.raises(RefusedDestination):
            await made.post("http://169.254.169.254/latest", b"{}", {}, timeout=5)
    finally:
        await made.close()
    assert proxy.requests == []


def test_no_proxy_names_suffixes_and_everything() -> None:
    proxies = Proxies({"https": "http://proxy:3128", "http": "http://proxy:3128",
                       "no": "internal.test, .corp.test,hooks.test:8443"})
    through = proxies.for_origin(Origin("https", "example.com", 443))
    assert through is not None
    assert (through.host, through.port, through.authorization) == ("proxy", 3128, None)
    for origin in (Origin("https", "internal.test", 443), Origin("http", "a.corp.test", 80),
                   Origin("https", "hooks.test", 8443)):
        assert proxies.for_origin(origin) is None, origin
    assert proxies.for_origin(Origin("https", "hooks.test", 443)) is not None
    assert Proxies({"https": "http://p:1", "no": "*"}).for_origin(
        Origin("https", "example.com", 443)) is None
    assert Proxies({"https": "http://p:1"}).for_origin(Origin("http", "example.com", 80)) is None


def test_proxies_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:8080")
    monkeypatch.setenv("NO_PROXY", "hooks.internal")
    proxies = Proxies.from_environment()
    chosen = proxies.for_origin(Origin("https", "example.com", 443))
    assert chosen is not None
    assert (chosen.host, chosen.port) == ("proxy.corp", 8080)
    assert proxies.for_origin(Origin("https", "hooks.internal", 443)) is None
