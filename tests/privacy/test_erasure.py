"""Keys that can be destroyed (issue 16, item 1) on both databases: a key per data
subject, erasure as the destruction of that key with the rows scrubbed, the erasure
ledger replayed on a restored database before it serves, and the check ids of
privacy-requirements.md these prove (DSR-3, PSE-1, PSE-3, TER-3, TEN-3)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from tests.conftest import TEST_ACTOR, Tenant, assign, copy_database, make_tenant
from tidings.audit.models import AuditEvent
from tidings.audit.service import seal_pending
from tidings.audit.verify import verify
from tidings.core.clock import FakeClock
from tidings.core.settings import Settings
from tidings.messaging.inbound import receive_inbound
from tidings.messaging.models import Message
from tidings.messaging.service import cipher_of
from tidings.messaging.tasks import SUBJECT_ERASED_ERROR
from tidings.privacy.erasure import REPLAY_GRACE, erase_subject, replay_erasures
from tidings.privacy.models import ErasureReplay
from tidings.privacy.scan import Canary, scan
from tidings.privacy.subjects import subject_index
from tidings.runtime import Runtime, close_runtime, open_runtime
from tidings.storage.ciphers import VaultError
from tidings.storage.db import SYSTEM
from tidings.storage.kek_rotation import rotate_kek
from tidings.storage.keystore import erasure_ledger_table, kek_table, subject_keys_table
from tidings.storage.vault import Vault

# On PostgreSQL, the key store in a PostgreSQL database of its own.
pytestmark = pytest.mark.pg_keystore

CANARY = "+12025550173"
OTHER = "+12025550188"


def canary_body() -> str:
    return f"CANARY-{uuid.uuid4()}"


async def send(client: httpx.AsyncClient, tenant: Tenant, to: str, body: str) -> str:
    response = await client.post("/v1/messages", headers=tenant.headers,
                                 json={"to": to, "from": "Acme", "body": body})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def stored(rt: Runtime, message_id: str) -> Message:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        message = await session.get(Message, message_id)
    assert message is not None
    return message


async def subject_key_rows(rt: Runtime, tenant: str) -> list[Any]:
    async with rt.vault.keystore.connect() as conn:
        return list((await conn.execute(select(subject_keys_table).where(
            subject_keys_table.c.tenant_id == tenant))).all())


async def keys_in_messages(rt: Runtime, tenant: str) -> dict[str, str]:
    """Each subject key the tenant's messages name, with its person's blind index."""
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = (await session.execute(select(
            Message.subject_key, Message.direction, Message.to_index, Message.from_index,
        ).where(Message.tenant_id == tenant, Message.subject_key.is_not(None)))).all()
    return {key: (to if direction == "outbound" else sender)
            for key, direction, to, sender in rows}


async def read(client: httpx.AsyncClient, tenant: Tenant, message_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/messages/{message_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


# --------------------------------------------------------------------------- subject keys


async def test_each_person_has_a_key_of_their_own_in_each_tenant(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    first, second = await send(client, acme, CANARY, "a"), await send(client, acme, CANARY, "b")
    other = await send(client, acme, OTHER, "c")
    elsewhere = await send(client, globex, CANARY, "d")
    keys = {m: (await stored(rt, m)).subject_key for m in (first, second, other, elsewhere)}
    assert keys[first] == keys[second]  # one person, one key
    assert len({keys[first], keys[other], keys[elsewhere]}) == 3
    assert all(str(k).startswith("sk_") for k in keys.values())
    acme_keys = await rt.vault.keys_for(acme.id)
    assert await keys_in_messages(rt, acme.id) == {
        keys[first]: subject_index(acme_keys, CANARY), keys[other]: subject_index(acme_keys, OTHER)}


async def test_TEN_3_a_subjects_ciphertext_opens_with_no_other_key(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant) -> None:
    mine = await stored(rt, await send(client, acme, CANARY, "hello"))
    theirs = await stored(rt, await send(client, globex, CANARY, "hello"))
    acme_keys, globex_keys = (await rt.vault.keys_for(acme.id), await rt.vault.keys_for(globex.id))
    other = await stored(rt, await send(client, acme, OTHER, "hello"))
    wrong = [acme_keys, await cipher_of(globex_keys, theirs), await cipher_of(acme_keys, other)]
    for cipher in wrong:
        assert cipher is not None
        with pytest.raises(VaultError):
            cipher.decrypt(mine.body_enc, field="messages.body")
    right = await cipher_of(acme_keys, mine)
    assert right is not None
    assert right.decrypt(mine.body_enc, field="messages.body") == "hello"
    # Moved to another column of the same subject, it fails too (associated data).
    with pytest.raises(VaultError):
        right.decrypt(mine.body_enc, field="messages.to")


async def test_a_batch_makes_a_key_for_each_new_recipient(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    numbers = [f"+1202555{n:04d}" for n in range(100, 160)]
    response = await client.post("/v1/messages/batch", headers=acme.headers, json={
        "from": "Acme", "body": "Hi", "recipients": [{"to": n} for n in numbers]})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(numbers)
    assert len(set(await keys_in_messages(rt, acme.id))) == len(numbers)


# --------------------------------------------------------------------------- erasure


async def test_DSR_3_erasure_destroys_the_key_and_scrubs_the_messages(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, globex: Tenant,
        settings: Settings) -> None:
    body = canary_body()
    erased_ids = [await send(client, acme, CANARY, body) for _ in range(3)]
    kept = await send(client, acme, OTHER, "not about them")
    theirs = await send(client, globex, CANARY, body)  # the same number in another tenant
    token = (await stored(rt, erased_ids[0])).subject_key
    keys = await rt.vault.keys_for(acme.id)

    erased = await erase_subject(rt, tenant=acme.id, address=CANARY, actor=TEST_ACTOR)

    assert erased is not None
    assert erased.subject_token == token
    assert erased.messages == 3
    # 3. The key is gone from the key store, and the ledger remembers its id only.
    assert token not in {row.key_id for row in await subject_key_rows(rt, acme.id)}
    async with rt.vault.keystore.connect() as conn:
        ledger = (await conn.execute(select(erasure_ledger_table))).all()
    assert [(row.tenant_id, row.subject_key) for row in ledger] == [(acme.id, token)]
    # 1, 2. No ciphertext left, and no blind index of the number under a live key.
    for message_id in erased_ids:
        row = await stored(rt, message_id)
        assert (row.to_enc, row.from_enc, row.body_enc, row.content_enc) == (b"", b"", b"", None)
        assert row.to_index == ""
        assert row.subject_key == token
        shown = await read(client, acme, message_id)
        assert (shown["to"], shown["from"], shown["body"]) == (None, None, None)
        assert shown["status"] in {"queued", "sent", "delivered"}  # the record stays
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        assert await session.scalar(select(func.count()).select_from(Message).where(
            Message.tenant_id == acme.id,
            Message.to_index == subject_index(keys, CANARY))) == 0
    # 5. The other person, and the same number in another tenant, untouched.
    assert (await read(client, acme, kept))["to"] == OTHER
    assert (await read(client, globex, theirs))["body"] == body
    # 6. The audit trail names the erasure by the key's id only, and still verifies.
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        [event] = (await session.scalars(select(AuditEvent).where(
            AuditEvent.tenant_id == acme.id, AuditEvent.action == "erase"))).all()
    assert (event.table_name, event.row_id, event.actor_id) == ("subject_keys", token, "tests")
    await seal_pending(rt.db, rt.audit_chain)
    assert (await verify(rt.db, rt.audit_chain, tenant=acme.id)).ok
    # PSE-1 for what is left: the canary scan finds the person in no form the
    # account's live keys could reverse, in the rows or (SQLite) the files.
    report = await scan(rt, [Canary.number(CANARY), Canary.text(body)], accounts=[acme.id])
    assert report.clean, report.findings


async def test_erasing_twice_or_a_stranger_changes_nothing(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    await send(client, acme, CANARY, "hi")
    assert await erase_subject(rt, tenant=acme.id, address=CANARY, actor=TEST_ACTOR)
    assert await erase_subject(rt, tenant=acme.id, address=CANARY, actor=TEST_ACTOR) is None
    assert await erase_subject(rt, tenant=acme.id, address=OTHER, actor=TEST_ACTOR) is None
    async with rt.vault.keystore.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(erasure_ledger_table)) == 1


async def test_a_message_queued_before_the_erasure_fails_and_is_never_sent(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    queued = await send(client, acme, CANARY, "never to leave")
    later = await send(client, acme, OTHER, "goes")
    await erase_subject(rt, tenant=acme.id, address=CANARY, actor=TEST_ACTOR)
    await rt.worker_pool().drain()
    shown = await read(client, acme, queued)
    assert (shown["status"], shown["error_code"]) == ("failed", SUBJECT_ERASED_ERROR)
    assert (await read(client, acme, later))["status"] == "sent"
    carrier = rt.connectors.get("sandbox")
    assert carrier is not None
    assert (await carrier.stats())["rows"] == 1  # type: ignore[attr-defined]  # ``later`` only


async def test_a_new_message_after_erasure_gets_a_new_key(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    before = (await stored(rt, await send(client, acme, CANARY, "1"))).subject_key
    await erase_subject(rt, tenant=acme.id, address=CANARY, actor=TEST_ACTOR)
    after_id = await send(client, acme, CANARY, "2")
    assert (await stored(rt, after_id)).subject_key not in {None, before}
    assert (await read(client, acme, after_id))["body"] == "2"


async def test_an_erasure_in_another_process_stops_this_one_using_the_key(
        rt: Runtime, acme: Tenant, settings: Settings) -> None:
    other = await Vault.open(settings)  # another process's vault, on the same key store
    try:
        keys = await other.keys_for(acme.id)
        assert keys.subjects is not None
        [key] = await keys.subjects.fresh(
            [subject_index(await rt.vault.keys_for(acme.id), CANARY)])
        blob = key.encrypt("x", field="messages.body")
        assert await rt.vault.erase_subject(acme.id, key.key_id)
        assert key.decrypt(blob, field="messages.body") == "x"  # cached until it polls
        assert await other.poll_erasures() >= 1
        with pytest.raises(VaultError, match="erased"):
            key.encrypt("y", field="messages.body")
        assert await keys.subjects.by_ids([key.key_id]) == {}
    finally:
        await other.close()


# --------------------------------------------------------------------------- restore drill


async def test_DSR_3_restore_drill_replays_the_ledger_before_traffic(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, settings: Settings,
        clock: FakeClock, tmp_path: Path) -> None:
    body = canary_body()
    erased_ids = [await send(client, acme, CANARY, body) for _ in range(2)]
    kept = await send(client, acme, OTHER, "stays")
    backup = await take_backup(rt, tmp_path)
    await erase_subject(rt, tenant=acme.id, address=CANARY, actor=TEST_ACTOR)
    await close_runtime(rt)

    await restore_backup(settings, backup)
    assert (await stored_raw(settings, erased_ids[0]))["to_index"] != ""  # the backup's rows

    restored = await open_runtime(settings, clock=clock, start_background=False)
    try:  # no request has been served: the replay ran inside open_runtime
        for message_id in erased_ids:
            row = await stored(restored, message_id)
            assert (row.to_enc, row.body_enc, row.to_index) == (b"", b"", "")
        assert (await stored(restored, kept)).to_index != ""
        # The canary scan: the database's rows (and on SQLite its files, log included)
        # hold the person in no form a live key of the account could reverse.
        report = await scan(restored, [Canary.number(CANARY), Canary.text(body)],
                            accounts=[acme.id])
        assert report.clean, report.findings
        # Applied once: the next start has nothing left to replay.
        assert await replay_erasures(restored.db, restored.vault) == 0
    finally:
        await close_runtime(restored)
        await reopen_for_fixture(rt, settings, clock)


async def take_backup(rt: Runtime, tmp_path: Path) -> Any:
    """SQLite: a real copy of the file. PostgreSQL: the rows the restore will put back."""
    if rt.db.is_sqlite:
        path = Path(rt.settings.resolved_database_url().split("///", 1)[1])
        copy = tmp_path / "backup.db"
        copy_database(path, copy)
        return copy
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = (await session.execute(select(
            Message.id, Message.to_enc, Message.from_enc, Message.body_enc,
            Message.to_index))).all()
    return [dict(row._mapping) for row in rows]


async def restore_backup(settings: Settings, backup: Any) -> None:
    """Put the database back as the backup had it, erasure watermark included."""
    if isinstance(backup, Path):
        target = Path(settings.resolved_database_url().split("///", 1)[1])
        for suffix in ("-wal", "-shm"):
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        copy_database(backup, target)
        return
    from tidings.storage.db import Database

    db = Database(settings.resolved_database_url(),
                  system_url=settings.resolved_system_database_url())
    try:
        async with db.transaction(tenant=SYSTEM) as session:
            for row in backup:
                await session.execute(update(Message).where(Message.id == row["id"]).values(
                    {k: v for k, v in row.items() if k != "id"}))
            await session.execute(update(ErasureReplay).values(applied_seq=0))
    finally:
        await db.dispose()


async def stored_raw(settings: Settings, message_id: str) -> dict[str, Any]:
    if settings.resolved_database_url().startswith("sqlite"):
        path = settings.resolved_database_url().split("///", 1)[1]
        with sqlite3.connect(path) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT to_index FROM messages WHERE id = ?",
                               (message_id,)).fetchone()
        conn.close()
        return dict(row)
    from tidings.storage.db import Database

    db = Database(settings.resolved_database_url(),
                  system_url=settings.resolved_system_database_url())
    try:
        async with db.transaction(tenant=SYSTEM, write=False) as session:
            index = await session.scalar(select(Message.to_index).where(Message.id == message_id))
        return {"to_index": index}
    finally:
        await db.dispose()


async def reopen_for_fixture(rt: Runtime, settings: Settings, clock: FakeClock) -> None:
    """The ``rt`` fixture closes its runtime at the end: give it a live one to close."""
    fresh = await open_runtime(settings, clock=clock, start_background=False)
    rt.__dict__.update(fresh.__dict__)


async def test_the_chore_scrubs_a_message_stored_after_the_erasure_once_it_settles(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, clock: FakeClock) -> None:
    """A send that held the key when it was destroyed stores its message after the
    erasure's own scrub; the ledger's replay catches it once the grace has passed."""
    first = await send(client, acme, CANARY, "before")
    token = (await stored(rt, first)).subject_key
    assert await erase_subject(rt, tenant=acme.id, address=CANARY, actor=TEST_ACTOR)
    async with rt.db.transaction(tenant=SYSTEM) as session:  # the late writer's row
        await session.execute(update(Message).where(Message.id == first).values(
            to_index="late", body_enc=b"late"))
    assert await replay_erasures(rt.db, rt.vault, now=clock.now(), grace=REPLAY_GRACE) == 0
    clock.advance(REPLAY_GRACE.total_seconds() + 1)
    assert await replay_erasures(rt.db, rt.vault, now=clock.now(), grace=REPLAY_GRACE) == 1
    row = await stored(rt, first)
    assert (row.to_index, row.body_enc, row.subject_key) == ("", b"", token)


# --------------------------------------------------------------------------- rotation


async def test_PSE_3_rotation_rewraps_every_key_and_touches_no_data(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, settings: Settings) -> None:
    ids = [await send(client, acme, number, f"body {n}")
           for n, number in enumerate((CANARY, OTHER, CANARY))]
    before = {m: (await stored(rt, m)).body_enc for m in ids}
    async with rt.vault.keystore.connect() as conn:
        wrapped_before = {r.key_id: r.wrapped_key for r in (await conn.execute(
            select(subject_keys_table))).all()}

    done = await rotate_kek(rt.vault, acme.id, settle_seconds=0)

    # The tenant's keys and the pool's batch (two of them bound to people).
    assert (done.active, done.rewrapped, done.destroyed) == (
        2, 1 + settings.subject_key_pool_batch, [1])
    async with rt.vault.keystore.connect() as conn:
        keks = (await conn.execute(select(kek_table.c.version, kek_table.c.state).where(
            kek_table.c.tenant_id == acme.id))).all()
        subjects = (await conn.execute(select(subject_keys_table).where(
            subject_keys_table.c.tenant_id == acme.id))).all()
    assert [tuple(k) for k in keks] == [(2, "active")]  # version 1 destroyed
    assert {s.kek_version for s in subjects} == {2}
    assert all(wrapped_before[s.key_id] != s.wrapped_key for s in subjects)
    assert {m: (await stored(rt, m)).body_enc for m in ids} == before  # data untouched
    cold = await Vault.open(settings)  # nothing cached: everything unwrapped afresh
    try:
        keys = await cold.keys_for(acme.id)
        for n, message_id in enumerate(ids):
            cipher = await cipher_of(keys, await stored(rt, message_id))
            assert cipher is not None
            assert cipher.decrypt(before[message_id], field="messages.body") == f"body {n}"
    finally:
        await cold.close()
    again = await rotate_kek(rt.vault, acme.id, settle_seconds=0)
    assert (again.active, again.destroyed) == (3, [2])


async def test_TER_3_a_backup_from_before_the_tenant_was_erased_stays_unreadable(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant, settings: Settings) -> None:
    message_id = await send(client, acme, CANARY, canary_body())
    backup = await stored(rt, message_id)  # the row as a backup of that moment holds it
    async with rt.vault.keystore.connect() as conn:
        old_keks = {bytes(r.wrapped_key) for r in (await conn.execute(select(kek_table).where(
            kek_table.c.tenant_id == acme.id))).all()}
    await rt.vault.destroy_tenant_keys(acme.id)
    fresh = await Vault.open(settings)
    try:
        keys = await fresh.keys_for(acme.id)  # new, unrelated keys
        assert await cipher_of(keys, backup) is None
        with pytest.raises(VaultError):
            keys.decrypt(backup.body_enc, field="messages.body")
    finally:
        await fresh.close()
    async with rt.vault.keystore.connect() as conn:  # the new KEK is another key
        now_keks = {bytes(r.wrapped_key) for r in (await conn.execute(select(kek_table).where(
            kek_table.c.tenant_id == acme.id))).all()}
    assert old_keks
    assert not old_keks & now_keks
    if settings.resolved_keystore_url().startswith("sqlite"):  # zeroed in the file too
        content = (settings.resolved_key_dir() / "keys.db").read_bytes()
        assert not any(wrapped in content for wrapped in old_keks)


async def test_another_tenant_is_untouched_by_a_tenant_erasure(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    globex = await make_tenant(rt, "Globex")
    theirs = await send(client, globex, CANARY, "kept")
    await rt.vault.destroy_tenant_keys(acme.id)
    assert (await read(client, globex, theirs))["body"] == "kept"


async def test_erasure_covers_what_the_person_sent_as_well_as_what_they_were_sent(
        client: httpx.AsyncClient, rt: Runtime, acme: Tenant) -> None:
    ours = "+12025550142"
    await assign(rt, acme.id, ours)
    body = canary_body()
    received = await receive_inbound(rt, sender=CANARY, to=ours, body=body, channel="sms",
                                     actor=TEST_ACTOR)
    sent = await send(client, acme, CANARY, "a reply")
    row = await stored(rt, received.row["id"])
    assert row.from_index == subject_index(await rt.vault.keys_for(acme.id), CANARY)
    assert row.subject_key == (await stored(rt, sent)).subject_key  # one person, one key

    erased = await erase_subject(rt, tenant=acme.id, address=CANARY, actor=TEST_ACTOR)

    assert erased is not None
    assert erased.messages == 2
    row = await stored(rt, received.row["id"])
    assert (row.body_enc, row.from_index, row.to_index) == (b"", None, "")
    shown = await read(client, acme, received.row["id"])
    assert (shown["direction"], shown["from"], shown["body"]) == ("inbound", None, None)
