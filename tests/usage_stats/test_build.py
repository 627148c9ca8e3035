"""Building a day's statistics, on both databases: once and whole (a rerun changes
nothing, a crash halfway leaves nothing and the next run counts the day right), days
without messages, people erased or anonymised before the build, and statistics that
outlive an account's purge."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from tests.api.test_operator_api import ops  # noqa: F401 (the operator-key fixture)
from tests.conftest import TEST_ACTOR, Tenant, settle
from tests.usage_stats.conftest import (
    DAY,
    FR,
    NOON,
    US,
    move_to,
    numbers,
    seed,
    settled,
    stored,
)
from tidings.core.clock import FakeClock
from tidings.privacy.erasure import erase_subject
from tidings.privacy.retention import apply_retention, limits_of, set_message_body_days
from tidings.privacy.termination import purge_account
from tidings.runtime import Runtime
from tidings.usage_stats import builder, service
from tidings.usage_stats.service import build_day, build_due, due_days
from tidings.usage_stats.tasks import build_service_stats

pytestmark = pytest.mark.pg_keystore


def buckets_of(rows: list[dict[str, object]]) -> dict[tuple[object, ...], tuple[object, ...]]:
    return {(r["day"], r["channel"], r["direction"], r["country"]): (
        r["messages"], r["delivered"], r["failed"], r["subjects"]) for r in rows}


async def test_a_day_is_built_once_when_settled_and_a_rerun_changes_nothing(
        rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    move_to(clock, NOON)
    await seed(rt, acme.id, numbers(US, 5), each=2)
    move_to(clock, settled(DAY) - timedelta(seconds=1))  # reports may still come
    assert await due_days(rt, now=clock.now()) == []
    await build_service_stats(rt)
    assert await stored(rt) == []
    move_to(clock, settled(DAY))
    assert await due_days(rt, now=clock.now()) == [DAY]
    await build_service_stats(rt)  # the workers' chore
    first = await stored(rt)
    assert buckets_of(first) == {(DAY, "sms", "outbound", "US"): (10, 10, 0, 5)}
    assert await build_due(rt) == []  # built: nothing is due
    await build_day(rt, DAY)  # built again on purpose: the same rows, not twice as many
    assert await stored(rt) == first


async def test_a_crash_while_counting_leaves_nothing_and_the_rerun_counts_right(
        rt: Runtime, clock: FakeClock, acme: Tenant, globex: Tenant,
        monkeypatch: pytest.MonkeyPatch) -> None:
    move_to(clock, NOON)
    await seed(rt, acme.id, numbers(US, 5), each=3)
    await seed(rt, globex.id, numbers(FR, 5))
    move_to(clock, settled(DAY))
    monkeypatch.setattr(builder, "CHUNK", 4)  # many chunks a day
    real_tally, calls = builder.tally, []

    def crashing(*args: object) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the worker died here")
        real_tally(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(builder, "tally", crashing)
    with pytest.raises(RuntimeError):
        await build_due(rt)
    assert await stored(rt) == []
    assert await due_days(rt, now=clock.now()) == [DAY]  # still due
    monkeypatch.setattr(builder, "tally", real_tally)
    await build_due(rt)
    assert buckets_of(await stored(rt)) == {(DAY, "sms", "outbound", "FR"): (5, 5, 0, 5),
                                            (DAY, "sms", "outbound", "US"): (15, 15, 0, 5)}


async def test_a_crash_while_writing_keeps_the_day_as_it_was(
        rt: Runtime, clock: FakeClock, acme: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    move_to(clock, NOON)
    await seed(rt, acme.id, numbers(US, 5))
    move_to(clock, settled(DAY))
    await build_due(rt)
    before = await stored(rt)
    real_replace = service.replace_buckets

    async def deleting_then_dying(*args: object) -> None:
        await real_replace(args[0], args[1], [])  # type: ignore[arg-type]  # deleted...
        raise RuntimeError("...and the process died before the new rows")

    monkeypatch.setattr(service, "replace_buckets", deleting_then_dying)
    with pytest.raises(RuntimeError):
        await build_day(rt, DAY)
    assert await stored(rt) == before  # one transaction: the delete went with it


async def test_days_without_messages_are_built_empty(rt: Runtime, clock: FakeClock,
                                                     acme: Tenant) -> None:
    move_to(clock, NOON)
    await seed(rt, acme.id, numbers(US, 5))
    move_to(clock, NOON + timedelta(days=2))
    await seed(rt, acme.id, numbers(US, 6))
    move_to(clock, settled(DAY + timedelta(days=2)))
    built = await build_due(rt)
    assert [(b.day, b.buckets, b.messages) for b in built] == [
        (DAY + timedelta(days=2), 1, 6), (DAY + timedelta(days=1), 0, 0), (DAY, 1, 5)]
    assert sorted({r["day"] for r in await stored(rt)}) == [DAY, DAY + timedelta(days=2)]
    assert await due_days(rt, now=clock.now()) == []


async def test_nothing_to_build_without_messages(rt: Runtime, clock: FakeClock) -> None:
    move_to(clock, settled(DAY))
    assert await build_due(rt) == []


async def test_a_person_erased_before_the_build_is_counted_by_no_one(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant) -> None:
    move_to(clock, NOON)
    await seed(rt, acme.id, numbers(US, 5))
    sent = await client.post("/v1/messages", headers=acme.headers,
                             json={"to": "+12025550173", "from": "Acme", "body": "Hello"})
    assert sent.status_code == 201, sent.text
    await settle(rt, clock)
    await settle(rt, clock, seconds=10)
    assert await erase_subject(rt, tenant=acme.id, address="+12025550173", actor=TEST_ACTOR)
    move_to(clock, settled(DAY))
    await build_due(rt)
    # Their message is counted, in no country (nothing of them is left to read), and
    # they are no one among the US people.
    assert buckets_of(await stored(rt)) == {(DAY, "sms", "outbound", "US"): (5, 5, 0, 5),
                                            (DAY, "sms", "outbound", None): (1, 1, 0, 1)}


async def test_an_anonymised_message_keeps_its_country_and_adds_no_one(
        rt: Runtime, clock: FakeClock, acme: Tenant, globex: Tenant) -> None:
    async with rt.db.transaction(tenant=globex.id) as session:  # a day's retention
        await set_message_body_days(session, tenant=globex.id, days=1,
                                    limits=limits_of(rt.settings), actor=TEST_ACTOR,
                                    now=clock.now())
    move_to(clock, NOON)
    await seed(rt, acme.id, numbers(US, 5))
    await seed(rt, globex.id, numbers(US, 3, first=5), each=2)
    move_to(clock, settled(DAY))
    assert (await apply_retention(rt, tenant=globex.id)).messages == 6
    await build_due(rt)
    # globex's 6 messages are in the US bucket (their subject_country); its 3 people
    # cannot be told apart any more, so the bucket counts acme's 5: fewer, never more.
    assert buckets_of(await stored(rt)) == {(DAY, "sms", "outbound", "US"): (11, 11, 0, 5)}


async def test_only_anonymised_messages_count_at_least_one_person(
        rt: Runtime, clock: FakeClock, globex: Tenant) -> None:
    async with rt.db.transaction(tenant=globex.id) as session:
        await set_message_body_days(session, tenant=globex.id, days=1,
                                    limits=limits_of(rt.settings), actor=TEST_ACTOR,
                                    now=clock.now())
    move_to(clock, NOON)
    await seed(rt, globex.id, numbers(FR, 7))
    move_to(clock, settled(DAY))
    await apply_retention(rt, tenant=globex.id)
    await build_due(rt)
    assert buckets_of(await stored(rt)) == {(DAY, "sms", "outbound", "FR"): (7, 7, 0, 1)}


async def test_the_statistics_outlive_an_accounts_purge(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        ops: dict[str, str]) -> None:  # noqa: F811
    move_to(clock, NOON)
    await seed(rt, acme.id, numbers(US, 5))
    move_to(clock, settled(DAY))
    await build_due(rt)
    before = await stored(rt)
    done = await client.post(f"/v1/operator/accounts/{acme.id}/status", headers=ops,
                             json={"status": "terminated", "reason": "Contract ended"})
    assert done.status_code == 200, done.text
    purge = await purge_account(rt, tenant=acme.id, actor=TEST_ACTOR)
    assert purge.certificate is not None
    assert purge.certificate["deleted_rows"]["messages"] == 5
    assert "service_stats" not in purge.certificate["deleted_rows"]
    assert await stored(rt) == before
    shown = (await client.get("/v1/operator/stats/traffic", headers=ops, params={
        "from": DAY.isoformat(), "to": DAY.isoformat()})).json()
    assert [(b["country"], b["messages"], b["subjects"]) for b in shown["buckets"]] == [
        ("US", 5, 5)]
