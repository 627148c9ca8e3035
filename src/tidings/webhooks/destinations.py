"""Where a webhook may go: never to link-local or cloud-metadata addresses, and to
loopback or private ones only when the operator allows it (``webhook_allow_private``).

A tenant chooses its webhook URLs; without this check it could make Tidings POST to
the host's own services, the cloud's metadata service or the internal network, and
read their answers back. The check runs twice: when a URL is saved (literal addresses
and names known to be local, a clear error naming the field), and on the addresses a
name resolves to when the client connects (``resolve``), which is the check that
counts: a name may point anywhere, and may change between the two.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from tidings.web.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The cloud providers' instance metadata services; link-local IPv4 covers most of them.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200"))
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata",
                            "instance-data", "instance-data.ec2.internal"})


class RefusedDestination(Exception):
    """The webhook would reach an address that is not allowed; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """``allow_private``: loopback and private ranges are allowed (development only)."""

    allow_private: bool = False

    def check_address(self, address: IPAddress) -> None:
        """Raise ``RefusedDestination`` unless a webhook may connect to ``address``."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        if address in METADATA_ADDRESSES:
            raise RefusedDestination("a cloud metadata address")
        if address.is_link_local:
            raise RefusedDestination("a link-local address")
        if address.is_multicast:
            raise RefusedDestination("a multicast address")
        if address.is_global:
            return
        if not self.allow_private:
            kind = ("a loopback" if address.is_loopback or address.is_unspecified
                    else "a private")
            raise RefusedDestination(f"{kind} address (TIDINGS_WEBHOOK_ALLOW_PRIVATE is off)")

    def check_host(self, host: str) -> IPAddress | None:
        """The check possible without DNS: a literal address in any spelling the
        resolver takes (``127.1``, ``0x7f000001``, ``[::1]``) or a name known to be
        local. Other names are checked on their addresses at connect time.
        Returns the address when ``host`` is one."""
        name = host.strip("[]").rstrip(".").lower()
        if name in METADATA_NAMES:
            raise RefusedDestination("a cloud metadata host")
        if name == "localhost" or name.endswith(".localhost"):
            self.check_address(ipaddress.ip_address("127.0.0.1"))
            return None
        address = literal_address(name)
        if address is not None:
            self.check_address(address)
        return address

    async def resolve(self, host: str, port: int) -> list[tuple[str, int]]:
        """Every address ``host`` resolves to, each checked; connect only to these.

        One refused address refuses the name: which one a connection would use is
        not ours to predict. Raises ``RefusedDestination`` or ``socket.gaierror``."""
        literal = self.check_host(host)
        if literal is not None:  # no look-up, as for a name
            return [(str(literal), port)]
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            self.check_address(ipaddress.ip_address(address.split("%")[0]))
        return [(address, port) for address in addresses]


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an address if it is one, parsed as the system resolver parses it
    (which takes ``127.1``, ``2130706433`` and ``0177.0.0.1``); None for a name."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(str(infos[0][4][0]).split("%")[0])


def check_webhook_url(url: str | None, *, field: str, allow_private: bool) -> None:
    """The save-time check of a tenant's webhook URL: ``InvalidRequest`` naming
    ``field`` when it points where no webhook may go."""
    if url is None:
        return
    host = urlsplit(url).hostname
    if not host:
        raise InvalidRequest(f"{field} has no host.", code="invalid_webhook_url")
    try:
        DestinationPolicy(allow_private).check_host(host)
    except RefusedDestination as exc:
        raise InvalidRequest(f"{field} points to {exc.reason}; webhooks go to public "
                             "addresses only.", code="webhook_url_refused") from None
