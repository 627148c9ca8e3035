"""The vocabulary of consent events and the rules on it, pure: no database, no keys.

- A **channel** is how a person is messaged; every channel but ``email`` reaches a
  phone number, ``email`` an e-mail address.
- A **purpose** is a fideslang data use: ``marketing`` (``marketing.communications``)
  needs consent in force; ``transactional`` (``essential.service``) does not, but a
  person's ``opt_out`` of it is recorded and shown all the same.
- A **mechanism** is what happened: ``opt_in``; ``soft_opt_in``, the e-Privacy
  exception for an existing customer's e-mail (Art. 13(2)), so e-mail only; ``opt_out``.
- A **source** is where it was captured: ``web_form``, ``keyword`` (STOP, START),
  ``api``, ``import``.

The state on a channel for a purpose is decided by the latest event, by when it was
captured (then by id, the order it was recorded in): consent is in force after an
``opt_in`` or a ``soft_opt_in``, and ends with an ``opt_out``. Erasing a person deletes
their events (``service.forget_subject``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

__all__ = ["EARLIEST_CAPTURE", "GIVING", "IP_PREFIX_BITS", "ConsentChannel",
           "ConsentMechanism", "ConsentPurpose", "ConsentSource", "ConsentState", "StatedEvent",
           "address_kind", "ip_prefix", "state_of"]


class ConsentChannel(StrEnum):
    SMS = "sms"
    WHATSAPP = "whatsapp"
    EMAIL = "email"
    VIBER = "viber"
    RCS = "rcs"
    VOICE = "voice"


class ConsentPurpose(StrEnum):
    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"


class ConsentMechanism(StrEnum):
    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"
    SOFT_OPT_IN = "soft_opt_in"


class ConsentSource(StrEnum):
    WEB_FORM = "web_form"
    KEYWORD = "keyword"
    API = "api"
    IMPORT = "import"


# The mechanisms that put consent in force.
GIVING = frozenset({ConsentMechanism.OPT_IN.value, ConsentMechanism.SOFT_OPT_IN.value})
# A time before which no consent could have been captured for this platform: an earlier
# one is a mistake in an import (a year 0025 for 2025), not a record.
EARLIEST_CAPTURE = datetime(2000, 1, 1, tzinfo=UTC)
# What is kept of the address a consent came from: its network, as small as it gets
# while still not singling a household out.
IP_PREFIX_BITS = {4: 24, 6: 48}


def address_kind(channel: str) -> str:
    """``email`` for the e-mail channel, ``number`` for every other."""
    return "email" if channel == ConsentChannel.EMAIL else "number"


def ip_prefix(raw: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) network of an address, as ``203.0.113.0/24``; an
    IPv4 address written as IPv6 (``::ffff:203.0.113.9``) counts as IPv4. Raises
    ``ValueError`` for anything that is not an address."""
    address = ipaddress.ip_address(raw.strip())
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    bits = IP_PREFIX_BITS[address.version]
    # From the address's integer: a zone (``fe80::1%eth0``) is dropped with the host part.
    return str(ipaddress.ip_network((int(address), bits), strict=False))


class StatedEvent(Protocol):
    """What ``state_of`` reads of an event (a row, or an answer's event)."""

    @property
    def id(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def purpose(self) -> str: ...
    @property
    def mechanism(self) -> str: ...
    @property
    def captured_at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class ConsentState:
    """Where a person stands on a channel for a purpose."""

    channel: str
    purpose: str
    in_force: bool
    mechanism: str  # the latest event's
    since: datetime  # when it was captured


def state_of(events: Iterable[StatedEvent]) -> list[ConsentState]:
    """The state on each channel and purpose a person has events for, decided by the
    latest event of each; by channel, then purpose."""
    latest: dict[tuple[str, str], StatedEvent] = {}
    for event in sorted(events, key=lambda e: (e.captured_at, e.id)):
        latest[(event.channel, event.purpose)] = event
    return [ConsentState(channel, purpose, event.mechanism in GIVING, event.mechanism,
                         event.captured_at)
            for (channel, purpose), event in sorted(latest.items())]
