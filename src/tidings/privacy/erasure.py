"""Erasing a data subject, and replaying the erasure ledger on the application database.

Erasure is crypto-erasure first: the subject's key is destroyed in the key store (and
the erasure written to its ledger in the same transaction), so from that moment no
ciphertext of the subject decrypts anywhere, in this database, in its replicas or in
its backups. Then the rows are scrubbed: their ciphertexts emptied and the blind index
that could match a guess of the number (an HMAC under a live key) cleared.

A backup restored later brings the scrubbed rows back as they were, still unreadable
(the key is gone) but with their blind indexes. ``replay_erasures`` runs at start-up,
before any traffic, and scrubs them again from the ledger; as a housekeeping chore it
also catches a message stored by a send that was in flight while its subject was erased.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.service import Actor, audit_row, record
from tidings.consents.service import forget_subject
from tidings.consents.service import subject_keys_of as consent_keys_of
from tidings.core.logs import get_logger
from tidings.core.services import Services
from tidings.messaging.models import Message
from tidings.messaging.service import PERSONAL_FIELDS
from tidings.privacy.models import REPLAY_ROW, ErasureReplay
from tidings.privacy.records import indexes_under, scrub_subject_records
from tidings.privacy.subjects import subject_index
from tidings.storage.db import SYSTEM, Database
from tidings.storage.keystore import erasure_ledger_table
from tidings.storage.vault import Vault

__all__ = ["Erased", "erase_subject", "replay_erasures", "scrub_messages"]

log = get_logger("tidings.privacy")

# What an erased message keeps: its id, status, channel, counts and times, the random id
# of the destroyed key; no ciphertext and no blind index.
_SCRUBBED: dict[str, Any] = {"to_enc": b"", "from_enc": b"", "body_enc": b"",
                             "content_enc": None, "to_index": "", "from_index": None}
# The chore leaves the newest entries to the erasure that wrote them (which scrubs at
# once) for this long, then scrubs again: a send that held the subject's key when it
# was destroyed has stored its message by then.
REPLAY_GRACE = timedelta(seconds=30)
_ERASED_FIELDS = (*PERSONAL_FIELDS, "content")
_REPLAY_ACTOR = Actor("system", "erasure-replay")


@dataclass(frozen=True)
class Erased:
    """An erasure done: the id of a destroyed key (the audit trail's token for the
    subject; a person with several keys has an event for each) and how many messages
    were scrubbed."""

    subject_token: str
    messages: int


async def erase_subject(rt: Services, *, tenant: str, address: str,
                        actor: Actor) -> Erased | None:
    """Erase the person at ``address`` (E.164 number or e-mail, normalised) in ``tenant``:
    ``None`` when the tenant holds no key of theirs (never seen, or erased already)."""
    keys = await rt.vault.keys_for(tenant)
    index = subject_index(keys, address)
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        key_ids = sorted({*await keys_of(session, tenant=tenant, index=index),
                          *await consent_keys_of(session, tenant=tenant, index=index)})
    if not key_ids:
        return None
    now = rt.clock.now()
    for key_id in key_ids:  # the keys first: from here nothing of theirs decrypts
        await rt.vault.erase_subject(tenant, key_id, now=now)
    async with rt.db.erasing(tenant=tenant) as session:
        count = await scrub_messages(session, tenant=tenant, key_ids=key_ids)
        # Messages from before subject keys, under the tenant's key, sent to this number.
        count += await _scrub(session, (Message.tenant_id == tenant)
                              & Message.subject_key.is_(None) & (Message.to_index == index)
                              & (Message.direction == "outbound"))
        await record(session, [audit_row(
            tenant=tenant, actor=actor, action="erase", table="subject_keys",
            row_id=key_id, fields=_ERASED_FIELDS, now=now) for key_id in key_ids])
    # Consent events are append-only for the app role; the system role deletes them.
    async with rt.db.erasing(tenant=SYSTEM, forget=False) as session:
        await forget_subject(session, tenant=tenant, subject_index=index, actor=actor, now=now)
    log.info("subject_erased", tenant=tenant, subject_token=key_ids[0], messages=count)
    return Erased(key_ids[0], count)


async def keys_of(session: AsyncSession, *, tenant: str, index: str) -> list[str]:
    """Every key a person's messages are under: those sent to them (``to_index``) and
    those they sent (``from_index``), through the two indexes that serve the look-up."""
    sent_to = select(Message.subject_key).where(
        Message.tenant_id == tenant, Message.to_index == index,
        Message.direction == "outbound", Message.subject_key.is_not(None))
    sent_by = select(Message.subject_key).where(
        Message.tenant_id == tenant, Message.from_index == index)
    found = (await session.scalars(sent_to.union(sent_by))).all()
    return sorted(key_id for key_id in found if key_id is not None)


async def scrub_messages(session: AsyncSession, *, tenant: str,
                         key_ids: Sequence[str] | None) -> int:
    """Empty the personal fields of the messages under ``key_ids`` (all of the tenant's
    when ``None``: the tenant was erased); idempotent. How many messages changed."""
    condition = Message.tenant_id == tenant
    if key_ids is not None:
        condition &= Message.subject_key.in_(key_ids)
    return await _scrub(session, condition)


async def _scrub(session: AsyncSession, condition: Any) -> int:
    result = await session.execute(
        update(Message).where(condition, Message.to_index != "").values(_SCRUBBED)
        .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def replay_erasures(db: Database, vault: Vault, *, now: datetime | None = None,
                          grace: timedelta | None = None) -> int:
    """Apply the ledger's entries this database has not applied yet, in order; how many.

    ``grace``: leave entries younger than that at ``now`` for a later round (the
    chore); ``None`` applies all (start-up, before traffic).
    """
    applied = await _applied(db)
    ledger = erasure_ledger_table
    async with vault.keystore.connect() as conn:
        entries = (await conn.execute(
            select(ledger.c.seq, ledger.c.tenant_id, ledger.c.subject_key, ledger.c.erased_at)
            .where(ledger.c.seq > applied).order_by(ledger.c.seq))).all()
    newest = None if grace is None else (now or datetime.now(UTC)) - grace
    done = 0
    for entry in entries:
        if newest is not None and entry.erased_at > newest:
            break  # in order: what follows is younger still
        key_ids = None if entry.subject_key is None else [entry.subject_key]
        async with db.erasing(tenant=SYSTEM, forget=False) as session:
            # Through the messages' indexes, before they are emptied: the person's
            # requests, holds and restrictions, as a restored backup brought them back.
            indexes = (None if key_ids is None else  # the tenant erased: all of it
                       await indexes_under(session, tenant=entry.tenant_id, key_ids=key_ids))
            await scrub_subject_records(session, tenant=entry.tenant_id, indexes=indexes,
                                        now=entry.erased_at)
            for index in indexes or ():  # a whole tenant erased: its purge deletes them
                await forget_subject(session, tenant=entry.tenant_id, subject_index=index,
                                     actor=_REPLAY_ACTOR, now=entry.erased_at)
            scrubbed = await scrub_messages(session, tenant=entry.tenant_id, key_ids=key_ids)
            await _advance(session, entry.seq)
        done += 1
        if scrubbed:
            log.info("erasure_replayed", seq=entry.seq, tenant=entry.tenant_id,
                     messages=scrubbed)
    if done:
        await db.forget_old_pages()
    return done


async def _applied(db: Database) -> int:
    async with db.transaction(tenant=SYSTEM, write=False) as session:
        seq = await session.scalar(select(ErasureReplay.applied_seq).where(
            ErasureReplay.id == REPLAY_ROW))
    return int(seq or 0)


async def _advance(session: AsyncSession, seq: int) -> None:
    # The row exists from the migration on (0019), so processes starting together only
    # ever update it; made again here if someone emptied the table by hand.
    now = datetime.now(UTC)
    moved = await session.execute(update(ErasureReplay).where(
        ErasureReplay.id == REPLAY_ROW, ErasureReplay.applied_seq < seq,
    ).values(applied_seq=seq, updated_at=now).execution_options(synchronize_session=False))
    if not moved.rowcount and await session.get(ErasureReplay, REPLAY_ROW) is None:  # type: ignore[attr-defined]
        session.add(ErasureReplay(id=REPLAY_ROW, applied_seq=seq, updated_at=now))
