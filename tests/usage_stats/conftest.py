"""The service statistics' tests: message ids made at the fake clock's time, as they are
made at the real clock's in production (a day is read by its ids), and messages written
in bulk for the buckets that need more people than the send path's tests would."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from tidings.core import ids
from tidings.core.clock import FakeClock
from tidings.core.ids import new_id
from tidings.messaging.status_changes import MESSAGES
from tidings.privacy.subjects import subject_index, subjects_for
from tidings.runtime import Runtime
from tidings.storage.bulk import insert_many
from tidings.storage.db import SYSTEM
from tidings.usage_stats.models import ServiceStat

DAY = date(2027, 3, 10)
NOON = datetime(2027, 3, 10, 12, tzinfo=UTC)
OUR_NUMBER = "+12025550199"


@pytest.fixture(autouse=True)
def ids_follow_the_clock(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    monkeypatch.setattr(ids, "time", SimpleNamespace(
        time_ns=lambda: int(clock.now().timestamp() * 1_000_000) * 1000))


def move_to(clock: FakeClock, moment: datetime) -> None:
    clock.advance((moment - clock.now()).total_seconds())


def settled(day: date, settle_days: int = 3) -> datetime:
    """The first moment ``day`` may be built."""
    return datetime.combine(day, datetime.min.time(), UTC) + timedelta(days=1 + settle_days)


def numbers(prefix: str, count: int, first: int = 0) -> list[str]:
    """``count`` numbers: ``prefix`` followed by a running number of four digits."""
    return [f"{prefix}{first + n:04d}" for n in range(count)]


US = "+1202555"      # +1 202 555 0000..: US
FR = "+3361234"      # +33 6 12 34 ....: FR
DE = "+49151234"     # +49 151 234 .... : DE
JP = "+8190123"      # +81 90 123 .... : JP
BR = "+5511912"      # +55 11 912 .... : BR


async def seed(rt: Runtime, tenant: str, addresses: Sequence[str], *, channel: str = "sms",
               direction: str = "outbound", status: str = "delivered", each: int = 1,
               segments: int = 1) -> list[str]:
    """Messages written as the send path writes them (each under its person's key, with
    its blind index), ``each`` per address, at the clock's time; their ids."""
    keys = await rt.vault.keys_for(tenant)
    people = await subjects_for(keys, list(addresses))
    now, rows = rt.clock.now(), []
    for address, key in zip(addresses, people, strict=True):
        for _ in range(each):
            outbound = direction == "outbound"
            rows.append({
                "id": new_id("msg"), "tenant_id": tenant, "direction": direction,
                "channel": channel, "status": status,
                "to_enc": key.encrypt(address if outbound else OUR_NUMBER, field="messages.to"),
                "to_index": subject_index(keys, address) if outbound else keys.blind_index(
                    OUR_NUMBER, field="messages.to"),
                "from_enc": key.encrypt("Acme" if outbound else address,
                                        field="messages.from"),
                "from_index": None if outbound else subject_index(keys, address),
                "body_enc": key.encrypt("Hello", field="messages.body"), "encoding": "GSM-7",
                "num_segments": segments, "status_callback": None, "send_at": None,
                "expires_at": None, "connector": "sandbox", "carrier_message_id": None,
                "error_code": None, "smpp_receipt_to": None, "fallback_channels": None,
                "fallback_after": None, "content_enc": None, "subject_key": key.key_id,
                "event_count": 1, "created_at": now, "updated_at": now})
    async with rt.db.core(tenant=tenant) as conn:
        await insert_many(conn, MESSAGES, rows)
    return [row["id"] for row in rows]


async def stored(rt: Runtime) -> list[dict[str, Any]]:
    """Every row of ``service_stats``, its columns by name, without the row id."""
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = (await session.execute(select(ServiceStat.__table__))).mappings().all()
    return sorted(({k: v for k, v in row.items() if k != "id"} for row in rows),
                  key=lambda r: (r["day"], r["channel"], r["direction"], r["country"] or ""))
