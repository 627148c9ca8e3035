"""Marketing consent as the send path will read it: by channel, the subject tokens with
consent in force, matching messages' ``to_index``; cached per account, a change this
process commits seen at once, one from elsewhere once the cache is told or expires."""

from __future__ import annotations

import httpx

from tests.conftest import TEST_ACTOR, Tenant
from tests.consents.helpers import EMAIL, NUMBER, record
from tidings.consents.marketing import MarketingConsents
from tidings.consents.rules import ConsentChannel, ConsentMechanism
from tidings.consents.schemas import RecordConsent
from tidings.consents.service import check_consent, event_row, new_event_ids, store_events
from tidings.core.clock import FakeClock
from tidings.privacy.subjects import subject_index, subjects_for
from tidings.runtime import Runtime

OTHER = "+12025550174"
HOUR = 3600.0


async def test_marketing_consents_by_channel_transactional_and_opt_outs_left_out(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    cache = MarketingConsents(rt.db, cache_seconds=3600)
    assert await cache.of(acme.id) == {}
    await record(client, acme)
    await record(client, acme, channel="whatsapp")
    await record(client, acme, number=OTHER, purpose="transactional")  # needs none
    await record(client, acme, number=None, email=EMAIL, channel="email",
                 mechanism="soft_opt_in")
    await record(client, globex, number=OTHER)
    clock.advance(HOUR)
    await record(client, acme, channel="whatsapp", mechanism="opt_out")

    keys = await rt.vault.keys_for(acme.id)
    # Seen at once: every recording in this process tells the caches.
    assert await cache.of(acme.id) == {
        "sms": frozenset({subject_index(keys, NUMBER)}),
        "email": frozenset({subject_index(keys, EMAIL)})}
    assert await cache.which(keys, "sms", [NUMBER, OTHER]) == [True, False]
    assert await cache.which(keys, "whatsapp", [NUMBER]) == [False]
    assert await cache.which(keys, "email", [EMAIL]) == [True]
    globex_keys = await rt.vault.keys_for(globex.id)
    assert await cache.which(globex_keys, "sms", [NUMBER, OTHER]) == [False, True]


async def test_a_change_from_elsewhere_is_seen_once_the_cache_is_invalidated(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    cache = MarketingConsents(rt.db, cache_seconds=3600)
    keys = await rt.vault.keys_for(acme.id)
    assert await cache.which(keys, "sms", [NUMBER]) == [False]
    # Stored as another process would: nothing in this one is told.
    body = RecordConsent(number=NUMBER, channel=ConsentChannel.SMS, purpose="marketing",
                         mechanism=ConsentMechanism.OPT_IN, source="api",
                         evidence_ref="elsewhere")
    consent = check_consent(body, now=rt.clock.now())
    [key] = await subjects_for(keys, [NUMBER])
    row = event_row(tenant=acme.id, event_id=new_event_ids(1)[0],
                    index=subject_index(keys, NUMBER), key=key, consent=consent,
                    captured_by="api_key:elsewhere", now=rt.clock.now())
    async with rt.db.transaction(tenant=acme.id) as session:
        await store_events(session, tenant=acme.id, rows=[row], fields=[consent.fields()],
                           actor=TEST_ACTOR, now=rt.clock.now())
    assert await cache.which(keys, "sms", [NUMBER]) == [False]  # cached still
    cache.invalidate(acme.id)
    assert await cache.which(keys, "sms", [NUMBER]) == [True]
    expiring = MarketingConsents(rt.db, cache_seconds=0.0)
    assert await expiring.which(keys, "sms", [NUMBER]) == [True]
