"""Webhooks through the operator's outgoing proxy, as the environment sets it.

``HTTPS_PROXY``, ``HTTP_PROXY`` and ``NO_PROXY`` (either case), read once by
:func:`urllib.request.getproxies`. An ``https`` webhook goes through an HTTP
``CONNECT`` tunnel (TLS is end to end, with the webhook's host); an ``http`` one is
sent to the proxy in absolute form. The proxy itself is reached over plain HTTP,
and ``user:password@`` in its URL goes as ``Proxy-Authorization: Basic``.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from tidings.webhooks.urls import Origin, basic_authorization


class ProxyError(Exception):
    """The proxy would not open the tunnel, or its answer was not HTTP."""


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str | None  # the value of Proxy-Authorization

    @classmethod
    def from_url(cls, url: str) -> Proxy:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"an outgoing proxy must be an http:// URL, not {parts.scheme!r}")
        return cls(parts.hostname, parts.port or 80, basic_authorization(parts))


class Proxies:
    """Which proxy, if any, a webhook to an origin goes through."""

    def __init__(self, settings: Mapping[str, str]) -> None:
        """``settings`` as ``urllib.request.getproxies()`` gives them: by scheme, and
        ``"no"`` for NO_PROXY."""
        self._settings = dict(settings)
        self._proxies = {scheme: Proxy.from_url(url) for scheme, url in settings.items()
                         if scheme in ("http", "https") and url}

    @classmethod
    def from_environment(cls) -> Proxies:
        return cls(urllib.request.getproxies())

    def for_origin(self, origin: Origin) -> Proxy | None:
        proxy = self._proxies.get(origin.scheme)
        if proxy is None or not self._settings.get("no"):
            return proxy
        # NO_PROXY as urllib reads it (suffixes, "*", host:port); typeshed omits it.
        bypass = urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
            origin.authority, self._settings)
        return None if bypass else proxy


async def open_tunnel(proxy: Proxy, origin: Origin, *,
                      head_limit: int) -> asyncio.Transport:
    """A connection to ``proxy`` that it has joined to ``origin`` (``CONNECT``).

    Raises ``OSError`` (the proxy cannot be reached) or ``ProxyError``."""
    loop = asyncio.get_running_loop()
    transport, answer = await loop.create_connection(lambda: _ConnectAnswer(head_limit),
                                                     proxy.host, proxy.port)
    lines = [f"CONNECT {origin.authority} HTTP/1.1", f"Host: {origin.authority}"]
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    try:
        status = await answer.status
    except BaseException:
        transport.close()
        raise
    if not 200 <= status < 300:
        transport.close()
        raise ProxyError(f"the proxy answered {status} to CONNECT")
    return transport


_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})")


class _ConnectAnswer(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT: its head, up to ``head_limit`` bytes."""

    def __init__(self, head_limit: int) -> None:
        self._limit = head_limit
        self._head = bytearray()
        self.status: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if self.status.done():
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > self._limit:
                self.status.set_exception(ProxyError("the proxy's answer head is too large"))
            return
        match = _STATUS_LINE.match(self._head)
        if match is None:
            self.status.set_exception(ProxyError("the proxy's answer is not HTTP"))
        else:
            self.status.set_result(int(match.group(1)))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.status.done():
            self.status.set_exception(ProxyError("the proxy closed the connection"))
