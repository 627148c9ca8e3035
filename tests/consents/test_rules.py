"""The rules of consent, pure: the state from the events, what is kept of an IP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from tidings.consents.rules import ConsentState, address_kind, ip_prefix, state_of

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Event:
    id: str
    channel: str
    purpose: str
    mechanism: str
    captured_at: datetime


def at(hours: int) -> datetime:
    return T0.replace(hour=hours)


def test_the_latest_event_by_capture_decides_then_the_order_recorded() -> None:
    events = [
        Event("cev_3", "sms", "marketing", "opt_in", at(1)),  # captured first, recorded last
        Event("cev_1", "sms", "marketing", "opt_out", at(2)),
        Event("cev_2", "email", "marketing", "soft_opt_in", at(2)),
        Event("cev_4", "email", "marketing", "opt_out", at(2)),  # same instant, later id
        Event("cev_5", "sms", "transactional", "opt_out", at(3)),
        Event("cev_6", "whatsapp", "marketing", "opt_in", at(3)),
        Event("cev_7", "whatsapp", "marketing", "opt_out", at(4)),
        Event("cev_8", "rcs", "marketing", "opt_in", at(5)),
    ]
    assert state_of(events) == [
        ConsentState("email", "marketing", False, "opt_out", at(2)),
        ConsentState("rcs", "marketing", True, "opt_in", at(5)),
        ConsentState("sms", "marketing", False, "opt_out", at(2)),
        ConsentState("sms", "transactional", False, "opt_out", at(3)),
        ConsentState("whatsapp", "marketing", False, "opt_out", at(4)),
    ]
    assert state_of([]) == []


@pytest.mark.parametrize(("given", "kept"), [
    ("203.0.113.77", "203.0.113.0/24"),
    (" 198.51.100.1 ", "198.51.100.0/24"),
    ("2001:db8:85a3:1234:5678::7", "2001:db8:85a3::/48"),
    ("::ffff:203.0.113.77", "203.0.113.0/24"),  # IPv4 written as IPv6
    ("fe80::1%eth0", "fe80::/48"),
])
def test_only_the_network_of_an_address_is_kept(given: str, kept: str) -> None:
    assert ip_prefix(given) == kept


@pytest.mark.parametrize("given", ["", "999.1.1.1", "203.0.113.0/24", "localhost", "1.2.3"])
def test_anything_but_an_address_is_refused(given: str) -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        ip_prefix(given)


def test_email_reaches_an_address_every_other_channel_a_number() -> None:
    assert address_kind("email") == "email"
    assert {address_kind(c) for c in ("sms", "whatsapp", "viber", "rcs", "voice")} == {
        "number"}
