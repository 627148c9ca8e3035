"""RET-3 on both databases: the service statistics are counted from de-identified
messages, hold no person, account or message, and show no bucket of fewer than k = 5
people; the smaller countries of a day, channel and direction are shown together as
``other`` when they reach k together; nothing hidden can be had by subtraction."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from tests.api.test_operator_api import ops  # noqa: F401 (the operator-key fixture)
from tests.conftest import Tenant, settle
from tests.usage_stats.conftest import (
    BR,
    DAY,
    DE,
    FR,
    JP,
    NOON,
    US,
    move_to,
    numbers,
    seed,
    settled,
    stored,
)
from tidings.core.clock import FakeClock
from tidings.messaging.models import Message
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM
from tidings.usage_stats.service import build_due

pytestmark = pytest.mark.pg_keystore

EMAILS = [f"person{n}@example.com" for n in range(5)]


async def busy_day(client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
                   globex: Tenant) -> None:
    """One day of traffic, 2027-03-10:

    - SMS out, US: 3 people through the API (the sandbox delivers), 3 more in bulk: 6;
    - SMS out, FR: the same 4 people from both accounts (4 people, not 8), DE: 3 people:
      each too few, together 7 (``other``);
    - WhatsApp out, BR: 5 people; JP: 4 people, alone in ``other`` (too few: hidden);
    - e-mail out: 5 addresses (no country);
    - SMS in, US: 2 people (too few, and no other country to join: hidden).
    """
    move_to(clock, NOON)
    for to in numbers(US, 3):
        sent = await client.post("/v1/messages", headers=acme.headers,
                                 json={"to": to, "from": "Acme", "body": "Hello"})
        assert sent.status_code == 201, sent.text
    await settle(rt, clock)
    await settle(rt, clock, seconds=10)  # delivered
    await seed(rt, acme.id, numbers(US, 3, first=3), each=2)
    await seed(rt, acme.id, numbers(FR, 4), each=2, segments=2)
    await seed(rt, globex.id, numbers(FR, 4), status="failed")
    await seed(rt, globex.id, numbers(DE, 3))
    await seed(rt, acme.id, numbers(BR, 5), channel="whatsapp")
    await seed(rt, globex.id, numbers(JP, 4), channel="whatsapp", status="undelivered")
    await seed(rt, acme.id, EMAILS, channel="email")
    await seed(rt, globex.id, numbers(US, 2), direction="inbound", status="received")


async def test_ret_3_no_published_bucket_has_fewer_than_k_people(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant, ops: dict[str, str]) -> None:  # noqa: F811
    await busy_day(client, rt, clock, acme, globex)
    move_to(clock, settled(DAY))
    [built] = await build_due(rt)
    assert (built.day, built.messages) == (DAY, 3 + 6 + 8 + 4 + 3 + 5 + 4 + 5 + 2)

    report = await client.get("/v1/operator/stats/traffic", headers=ops,
                              params={"from": "2027-03-10", "to": "2027-03-10"})
    assert report.status_code == 200, report.text
    body = report.json()
    shown = {(b["channel"], b["direction"], b["country"]): b for b in body["buckets"]}
    assert body["min_subjects"] == 5
    assert all(b["subjects"] >= 5 for b in body["buckets"])
    assert set(shown) == {("sms", "outbound", "US"), ("sms", "outbound", "other"),
                          ("whatsapp", "outbound", "BR"), ("email", "outbound", None)}
    assert shown[("sms", "outbound", "US")] | {"day": "2027-03-10"} == {
        "day": "2027-03-10", "channel": "sms", "direction": "outbound", "country": "US",
        "messages": 9, "segments": 9, "delivered": 9, "failed": 0, "subjects": 6}
    # FR (4 people in two accounts, counted once) and DE (3) together: 7 people.
    other = shown[("sms", "outbound", "other")]
    assert (other["messages"], other["segments"], other["delivered"], other["failed"],
            other["subjects"]) == (8 + 4 + 3, 16 + 4 + 3, 8 + 3, 4, 7)
    assert shown[("email", "outbound", None)]["subjects"] == 5

    # What is stored of the hidden buckets is all there, and none of it is shown.
    kept = {(r["channel"], r["direction"], r["country"]): r for r in await stored(rt)}
    assert (kept[("sms", "outbound", "FR")]["subjects"],
            kept[("whatsapp", "outbound", "JP")]["subjects"],
            kept[("sms", "inbound", "US")]["subjects"]) == (4, 4, 2)

    # Totals are the sums of what is shown: a hidden bucket is in none of them, so no
    # total less the buckets shown leaves anything.
    for params in ({}, {"channel": "whatsapp"}, {"channel": "sms"}, {"country": "US"}):
        view = (await client.get("/v1/operator/stats/traffic", headers=ops, params={
            "from": "2027-03-10", "to": "2027-03-10", **params})).json()
        for name in ("messages", "segments", "delivered", "failed"):
            assert view["totals"][name] == sum(b[name] for b in view["buckets"]), params
    whatsapp = (await client.get("/v1/operator/stats/traffic", headers=ops, params={
        "from": "2027-03-10", "to": "2027-03-10", "channel": "whatsapp"})).json()
    assert [b["country"] for b in whatsapp["buckets"]] == ["BR"]
    assert whatsapp["totals"]["messages"] == 5  # JP's 4 are in no total
    assert body["totals"]["messages"] < sum(r["messages"] for r in kept.values())
    for country in ("FR", "DE", "JP"):  # no filter shows what the rule hid
        alone = (await client.get("/v1/operator/stats/traffic", headers=ops, params={
            "from": "2027-03-10", "to": "2027-03-10", "country": country})).json()
        assert (alone["buckets"], alone["totals"]["messages"]) == ([], 0)


async def test_ret_3_the_table_holds_no_number_token_account_or_message(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    await busy_day(client, rt, clock, acme, globex)
    move_to(clock, settled(DAY))
    await build_due(rt)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        messages = (await session.execute(select(
            Message.id, Message.tenant_id, Message.to_index, Message.from_index,
            Message.subject_key))).all()
    forbidden = {acme.id, globex.id, *EMAILS}
    for row in messages:
        forbidden |= {value for value in row if value}
    everyone = [*numbers(US, 6), *numbers(FR, 4), *numbers(DE, 3), *numbers(BR, 5),
                *numbers(JP, 4)]
    forbidden |= {*everyone, *(n.lstrip("+") for n in everyone)}
    rows = await stored(rt)
    assert rows
    for row in rows:
        assert set(row) == {"day", "channel", "direction", "country", "messages", "segments",
                            "delivered", "failed", "subjects"}
        for value in row.values():
            text = str(value)
            assert not any(secret in text for secret in forbidden), (row, value)
            assert len(text) <= 10  # a day, a channel, a country, a count: no token fits
