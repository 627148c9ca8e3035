"""What an API key may do and from where: its scopes, expiry and allowed networks.

A key's scopes are a subset of its creator's permissions, stored space-separated;
a key made before scopes existed (NULL) keeps every permission of its account. The
allowed networks are CIDRs; none means any address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence, Set
from dataclasses import dataclass
from datetime import datetime

from tidings.accounts.models import ApiKey
from tidings.accounts.permissions import (
    Permission,
    ScopeTooWide,
    UnknownScope,
    key_scopes,
)
from tidings.web.errors import InvalidRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_NETWORKS = 50
EVERY_PERMISSION = frozenset(Permission)


@dataclass(frozen=True)
class KeyLimits:
    """Checked limits of a new key, ready to store."""

    scopes: frozenset[Permission]
    expires_at: datetime | None
    networks: tuple[Network, ...]

    @property
    def scopes_column(self) -> str:
        return " ".join(sorted(self.scopes))

    @property
    def networks_column(self) -> str | None:
        return " ".join(str(n) for n in self.networks) or None


def check_key_limits(*, scopes: Sequence[str] | None, expires_at: datetime | None,
                     allowed_ips: Sequence[str] | None, granted: Set[Permission],
                     now: datetime) -> KeyLimits:
    """The limits of a key its creator (holding ``granted``) asks for, or a 400/403."""
    try:
        chosen = key_scopes(scopes, granted)
    except UnknownScope as exc:
        raise InvalidRequest(f"There is no scope {exc.name!r}; the scopes are the permission "
                             "names, such as messages:send.", code="unknown_scope",
                             parameter="scopes") from None
    except ScopeTooWide as exc:
        raise InvalidRequest(f"The key cannot have {exc}.", code="scope_too_wide",
                             parameter="scopes") from None
    if expires_at is not None and expires_at <= now:
        raise InvalidRequest("expires_at must be in the future.", code="invalid_expiry",
                             parameter="expires_at")
    return KeyLimits(chosen, expires_at, parse_networks(allowed_ips or ()))


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    """CIDRs (or single addresses) as networks; a 400 naming the first that does not parse."""
    if len(values) > MAX_NETWORKS:
        raise InvalidRequest(f"At most {MAX_NETWORKS} networks may be allowed.",
                             code="too_many_networks", parameter="allowed_ips")
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise InvalidRequest(f"{value[:60]!r} is not an IP address or a CIDR such as "
                                 "203.0.113.0/24.", code="invalid_cidr",
                                 parameter="allowed_ips") from None
    return tuple(networks)


def key_permissions(key: ApiKey) -> frozenset[Permission]:
    if key.scopes is None:
        return EVERY_PERMISSION
    return frozenset(Permission(s) for s in key.scopes.split() if s in _KNOWN)


def key_networks(key: ApiKey) -> tuple[Network, ...]:
    if not key.allowed_ips:
        return ()
    return tuple(ipaddress.ip_network(n) for n in key.allowed_ips.split())


def scopes_out(key: ApiKey) -> list[str]:
    return sorted(key_permissions(key))


def networks_out(key: ApiKey) -> list[str]:
    return [str(n) for n in key_networks(key)]


_KNOWN = frozenset(p.value for p in Permission)
