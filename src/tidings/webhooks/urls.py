"""Webhook URLs as the HTTP client sends them: origin, request target, request head.

A host in another script goes out as its IDNA A-label (``bücher.example`` as
``xn--bcher-kva.example``, in the connection, the ``Host`` header and TLS), and a
path or query with characters outside ASCII goes out percent-encoded (UTF-8), as
a browser sends them; escapes already in the URL are kept as they are.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, unquote, urlsplit

import idna


class InvalidURL(ValueError):
    """The URL is not an absolute http(s) URL with a host."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str  # ASCII: an IDNA A-label, or an address
    port: int

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def authority(self) -> str:
        """``host:port`` always: a CONNECT request's target."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def absolute(self) -> str:
        """``scheme://host[:port]``: the start of an absolute-form request target."""
        return f"{self.scheme}://{self.host_header}"


@dataclass(frozen=True, slots=True)
class Target:
    origin: Origin
    path: str  # with the query; ASCII
    authorization: str | None  # Basic, from user:password@ in the URL


# What a path or a query may hold unescaped (RFC 3986's pchar, "/" and "?"); "%" too,
# so that escapes already in the URL stay as they are.
_SAFE_IN_PATH = "/:@!$&'()*+,;=-._~%"
_SAFE_IN_QUERY = _SAFE_IN_PATH + "?"


@functools.lru_cache(maxsize=4096)  # a few URLs per account, each parsed per request else
def split_url(url: str) -> Target:
    """Where an http(s) URL points: origin, request target, credentials in it.

    Kept per URL (a refused one is parsed again, to raise again)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(url) from exc
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("http", "https") or not host or any(c in host for c in " \t\r\n/\\@"):
        raise InvalidURL(url)
    if any(c in url for c in " \t\r\n\x00"):
        raise InvalidURL(url)
    path = quote(parts.path or "/", safe=_SAFE_IN_PATH)
    if parts.query:
        path += "?" + quote(parts.query, safe=_SAFE_IN_QUERY)
    return Target(Origin(scheme, ascii_host(host, url), port or (443 if scheme == "https" else 80)),
                  path, basic_authorization(parts))


def basic_authorization(parts: SplitResult) -> str | None:
    """``user:password@`` of a URL as an ``Authorization: Basic`` value (percent-decoded)."""
    if parts.username is None:
        return None
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def ascii_host(host: str, url: str) -> str:
    """``host`` as it goes on the wire: its IDNA A-label when it is not ASCII."""
    if host.isascii():
        return host
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidURL(url) from exc


def request_head(origin: Origin, target: str, headers: Mapping[str, str],
                 content_length: int) -> bytes:
    """The request line and headers; a later header replaces an earlier one of the same
    name whatever its case. A name or value that would break the head is refused."""
    names = _header_names(tuple(headers))
    if _BREAKS_HEAD.search("".join(headers.values())):
        bad = next(name for name, value in headers.items() if _BREAKS_HEAD.search(value))
        raise ValueError(f"header {bad[:40]!r} is not a valid HTTP header")
    lines = [f"POST {target} HTTP/1.1", f"Host: {origin.host_header}",
             *(f"{name}: {headers[name]}" for name in names),
             f"Content-Length: {content_length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="strict")


@functools.lru_cache(maxsize=256)
def _header_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """The names to send, in order, for headers given with ``names``: each checked, the
    last of a name in any case in the place of the first, without Host or
    Content-Length (``request_head`` writes those). A sender gives the same few sets of
    names every time, so the checks run once per set, not once per request: checking
    every name of every request was 4 % of a webhook worker's CPU in bench.smpp."""
    merged: dict[str, str] = {}
    for name in names:
        if not _is_token(name):
            raise ValueError(f"header {name[:40]!r} is not a valid HTTP header")
        merged[name.lower()] = name
    merged.pop("host", None)
    merged.pop("content-length", None)
    return tuple(merged.values())


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110's tchar, one or more
_BREAKS_HEAD = re.compile("[\r\n\x00]")  # in a value, a header or a request of its own


def _is_token(name: str) -> bool:
    return _TOKEN.fullmatch(name) is not None
