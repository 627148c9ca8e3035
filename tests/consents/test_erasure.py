"""When a person is erased, ``forget_subject`` deletes every consent event of theirs (no
token of them is left: DSR-3), in the system role's session, which the append-only
trigger lets delete; their keys are found through the events too. When an account is
purged, its consent events go with it."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from tests.api.test_operator_api import operator_key
from tests.conftest import TEST_ACTOR, Tenant
from tests.consents.helpers import EMAIL, NUMBER, audited, history, record, stored
from tidings.audit.models import AuditEvent
from tidings.consents.service import (
    forget_subject,
    marketing_consents,
    subject_keys_in_use,
    subject_keys_of,
)
from tidings.core.clock import FakeClock
from tidings.privacy.subjects import subject_index
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM

HOUR = 3600.0


async def forget(rt: Runtime, tenant: str, address: str) -> int:
    keys = await rt.vault.keys_for(tenant)
    async with rt.db.erasing(tenant=SYSTEM, forget=False) as session:
        return await forget_subject(session, tenant=tenant,
                                    subject_index=subject_index(keys, address),
                                    actor=TEST_ACTOR, now=rt.clock.now())


def states(shown: dict[str, Any]) -> dict[tuple[str, str], tuple[bool, str]]:
    return {(s["channel"], s["purpose"]): (s["in_force"], s["mechanism"])
            for s in shown["state"]}


async def test_forgetting_a_person_deletes_their_events_and_no_one_elses(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    await record(client, acme)
    await record(client, acme, channel="whatsapp")
    await record(client, acme, purpose="transactional", mechanism="opt_out")
    await record(client, acme, number="+12025550174")  # someone else
    await record(client, globex)  # the same number in another account: another person
    clock.advance(HOUR)

    assert await forget(rt, acme.id, NUMBER) == 3
    shown = await history(client, acme)
    assert (shown["events"], shown["state"]) == ([], [])
    assert (await history(client, globex))["state"][0]["in_force"] is True
    assert (await history(client, acme, number="+12025550174"))["state"][0]["in_force"]
    keys = await rt.vault.keys_for(acme.id)
    assert subject_index(keys, NUMBER) not in {row.subject_index for row in await stored(rt)
                                               if row.tenant_id == acme.id}
    deletes = [e for e in await audited(rt, acme.id) if e.action == "delete"]
    assert len(deletes) == 3
    assert {tuple(e.fields) for e in deletes} == {("evidence_ref", "ip_prefix", "subject")}
    assert {e.actor_id for e in deletes} == {TEST_ACTOR.id}

    assert await forget(rt, acme.id, NUMBER) == 0  # erased already: nothing left
    assert await forget(rt, acme.id, "+12025550175") == 0  # nobody
    async with rt.db.transaction(tenant=acme.id, write=False) as session:
        consented = await marketing_consents(session, acme.id)
    assert subject_index(keys, NUMBER) not in consented.get("sms", frozenset())

    # The person comes back later and opts in anew: that consent is theirs to give.
    clock.advance(HOUR)
    await record(client, acme)
    assert states(await history(client, acme))[("sms", "marketing")] == (True, "opt_in")


async def test_the_keys_of_a_persons_evidence_are_found_and_kept_in_use(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    await record(client, acme, ip="203.0.113.9")
    await record(client, acme, number=None, email=EMAIL, channel="email")
    keys = await rt.vault.keys_for(acme.id)
    index = subject_index(keys, NUMBER)
    async with rt.db.transaction(tenant=acme.id, write=False) as session:
        theirs = await subject_keys_of(session, tenant=acme.id, index=index)
        everyone = await subject_keys_in_use(session, tenant=acme.id,
                                             key_ids=[*theirs, "sk_unknown"])
    [row, _email] = sorted(await stored(rt), key=lambda r: r.channel != "sms")
    assert theirs == [row.subject_key]
    assert everyone == {row.subject_key}
    for key_id in theirs:  # a key destroyed another way: the evidence reads as gone
        assert await rt.vault.erase_subject(acme.id, key_id, now=rt.clock.now())
    shown = await history(client, acme)
    assert [(e["mechanism"], e["evidence_ref"], e["ip_prefix"]) for e in shown["events"]] == [
        ("opt_in", None, None)]
    kept = (await history(client, acme, email=EMAIL))["events"]
    assert kept[0]["evidence_ref"] is not None  # another person's proof is untouched


async def test_a_terminated_accounts_purge_deletes_its_consent_events(
        client: httpx.AsyncClient, rt: Runtime, clock: FakeClock, acme: Tenant,
        globex: Tenant) -> None:
    await record(client, acme)
    await record(client, globex)
    ops = {"Authorization": f"Bearer {(await operator_key(rt, clock))[1]}"}
    done = await client.post(f"/v1/operator/accounts/{acme.id}/status", headers=ops,
                             json={"status": "terminated", "reason": "Contract ended"})
    assert done.status_code == 200, done.text
    purged = await client.post(f"/v1/operator/privacy/purges/{acme.id}", headers=ops)
    assert purged.status_code == 200, purged.text
    certificate = await client.get(f"/v1/operator/privacy/purges/{acme.id}/certificate",
                                   headers=ops)
    assert certificate.json()["deleted_rows"]["consent_events"] == 1
    assert [row.tenant_id for row in await stored(rt)] == [globex.id]
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        kept = (await session.scalars(select(AuditEvent.row_id).where(
            AuditEvent.tenant_id == acme.id,
            AuditEvent.table_name == "consent_events"))).all()
    assert len(kept) == 1  # the audit trail of it stays: names of fields, no values
