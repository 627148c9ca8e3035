"""Consent events: checked, stored with their audit events, read back, deleted by erasure.

A person is known by their subject token (``privacy.subjects.subject_index``), the blind
index their messages carry as ``to_index``; what they gave as proof (the evidence
reference, the network they wrote from) is encrypted under their own subject key, so
that erasing them (destroying their keys) shreds it while the event itself, who
consented to what and when, stays. Nothing here commits, and nothing ever updates or
deletes an event: a change of mind is a new event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.audit.service import Actor, audit_row, record
from tidings.consents.models import EVIDENCE_FIELD, IP_PREFIX_FIELD, ConsentEvent
from tidings.consents.rules import (
    EARLIEST_CAPTURE,
    GIVING,
    ConsentChannel,
    ConsentPurpose,
    address_kind,
    ip_prefix,
)
from tidings.consents.schemas import ConsentMechanismIn, RecordConsent
from tidings.core.ids import new_id
from tidings.messaging.addresses import AddressError, normalize_e164, normalize_email
from tidings.storage.bulk import insert_many
from tidings.storage.ciphers import FieldCipher, SubjectKey
from tidings.web.errors import InvalidRequest

__all__ = ["TABLE", "CheckedConsent", "check_consent", "events_of", "forget_subject",
           "marketing_consents", "new_event_ids", "parse_subject", "store_events",
           "subject_keys_in_use", "subject_keys_of"]

TABLE = "consent_events"
CONSENT_EVENTS = cast(Table, ConsentEvent.__table__)
ID_PREFIX = "cev"
_KEYS_A_QUERY = 500  # under every database's limit of parameters a statement


@dataclass(frozen=True, slots=True)
class CheckedConsent:
    """A consent event as the rules accept it: the person's address normalised, the
    IP reduced to its network; ``captured_at`` None for now."""

    kind: str  # number or email
    address: str
    channel: str
    purpose: str
    mechanism: str
    source: str
    evidence_ref: str
    text_version: str | None
    text_sha256: str | None
    ip_prefix: str | None
    captured_at: datetime | None

    def fields(self) -> list[str]:
        """The names of what the event holds, for its audit event."""
        optional = {"text_version": self.text_version, "text_sha256": self.text_sha256,
                    "ip_prefix": self.ip_prefix}
        return ["subject", "channel", "purpose", "mechanism", "source", "evidence_ref",
                "captured_at", *(name for name, value in optional.items() if value)]


def parse_subject(*, number: str | None, email: str | None) -> tuple[str, str]:
    """Exactly one of a number or an e-mail address, normalised as messages normalise
    them (so the token is their messages' ``to_index``): ``(kind, address)``; 400
    otherwise, naming the field."""
    if (number is None) == (email is None):
        raise InvalidRequest("Name the person by exactly one of number or email.",
                             code="invalid_subject", parameter="subject")
    kind, raw = ("number", number) if number is not None else ("email", email)
    assert raw is not None
    try:
        return kind, (normalize_e164 if kind == "number" else normalize_email)(raw.strip())
    except AddressError as exc:
        raise InvalidRequest(exc.message, code=exc.code, parameter=kind) from None


def check_consent(body: RecordConsent, *, now: datetime) -> CheckedConsent:
    """The rules beyond the schema's: the person named as the channel reaches them, a
    soft opt-in on e-mail only, an IP address, a capture time in the past."""
    kind, address = parse_subject(number=body.number, email=body.email)
    expected = address_kind(body.channel)
    if kind != expected:
        raise InvalidRequest(
            f"The {body.channel.value} channel reaches "
            f"{'an e-mail address' if expected == 'email' else 'a phone number'}: "
            f"name the person by {expected}.", code="subject_channel_mismatch",
            parameter=kind)
    if (body.mechanism == ConsentMechanismIn.SOFT_OPT_IN
            and body.channel != ConsentChannel.EMAIL):
        raise InvalidRequest("A soft opt-in (an existing customer's, e-Privacy Art. 13(2)) "
                             "is for e-mail only; other channels need an opt-in.",
                             code="soft_opt_in_email_only", parameter="mechanism")
    return CheckedConsent(
        kind=kind, address=address, channel=body.channel.value,
        purpose=body.purpose.value, mechanism=body.mechanism.value,
        source=body.source.value, evidence_ref=body.evidence_ref,
        text_version=body.text_version, text_sha256=body.text_sha256,
        ip_prefix=_network(body.ip), captured_at=_captured(body.captured_at, now))


def _network(ip: str | None) -> str | None:
    if ip is None:
        return None
    try:
        return ip_prefix(ip)
    except ValueError:
        raise InvalidRequest("ip is not an IPv4 or IPv6 address.", code="invalid_ip_address",
                             parameter="ip") from None


def _captured(at: datetime | None, now: datetime) -> datetime | None:
    if at is None:
        return None
    if at > now:
        raise InvalidRequest("captured_at is in the future: a consent is recorded once it "
                             "was given.", code="captured_at_in_future",
                             parameter="captured_at")
    if at < EARLIEST_CAPTURE:
        raise InvalidRequest("captured_at is before 2000: check the year.",
                             code="captured_at_too_early", parameter="captured_at")
    return at


def new_event_ids(count: int) -> list[str]:
    """Ids for events recorded together, increasing in the order given: a person's
    events captured at the same instant then keep the order they were recorded in."""
    return sorted(new_id(ID_PREFIX) for _ in range(count))


def event_row(*, tenant: str, event_id: str, index: str, key: SubjectKey,
              consent: CheckedConsent, captured_by: str, now: datetime) -> dict[str, Any]:
    """The row of a consent event, its proof under the person's key."""
    ip = consent.ip_prefix
    return {
        "id": event_id, "tenant_id": tenant, "subject_index": index,
        "subject_key": key.key_id, "channel": consent.channel,
        "purpose": consent.purpose, "mechanism": consent.mechanism,
        "source": consent.source,
        "evidence_ref_enc": key.encrypt(consent.evidence_ref, field=EVIDENCE_FIELD),
        "text_sha256": consent.text_sha256, "text_version": consent.text_version,
        "ip_prefix_enc": None if ip is None else key.encrypt(ip, field=IP_PREFIX_FIELD),
        "captured_at": consent.captured_at or now, "captured_by": captured_by,
        "recorded_at": now,
    }


async def store_events(session: AsyncSession, *, tenant: str,
                       rows: Sequence[dict[str, Any]], fields: Sequence[Sequence[str]],
                       actor: Actor, now: datetime) -> None:
    """Append ``rows`` (``event_row``'s) and an audit event for each, naming the fields
    it holds (``fields``, in the same order), never their values."""
    await insert_many(session, CONSENT_EVENTS, rows)
    await record(session, [audit_row(tenant=tenant, actor=actor, action="create",
                                     table=TABLE, row_id=row["id"], fields=names, now=now)
                           for row, names in zip(rows, fields, strict=True)])


async def events_of(session: AsyncSession, *, tenant: str, index: str,
                    channel: str | None = None) -> Sequence[ConsentEvent]:
    """A person's events, oldest first (by capture, then as recorded)."""
    query = select(ConsentEvent).where(ConsentEvent.tenant_id == tenant,
                                       ConsentEvent.subject_index == index)
    if channel is not None:
        query = query.where(ConsentEvent.channel == channel)
    return (await session.scalars(query.order_by(ConsentEvent.captured_at,
                                                 ConsentEvent.id))).all()


def evidence_of(cipher: FieldCipher | None, row: ConsentEvent) -> tuple[str | None, str | None]:
    """The event's evidence and IP prefix; ``(None, None)`` once the person was erased
    (``cipher`` None: their key is destroyed)."""
    if cipher is None:
        return None, None
    return (cipher.decrypt_optional(row.evidence_ref_enc, field=EVIDENCE_FIELD),
            cipher.decrypt_optional(row.ip_prefix_enc, field=IP_PREFIX_FIELD))


async def marketing_consents(session: AsyncSession, tenant: str) -> dict[str, frozenset[str]]:
    """Channel → the subject tokens with marketing consent in force on it: what the send
    path checks a marketing message's ``to_index`` against."""
    found = await session.execute(
        select(ConsentEvent.subject_index, ConsentEvent.channel, ConsentEvent.mechanism)
        .where(ConsentEvent.tenant_id == tenant,
               ConsentEvent.purpose == ConsentPurpose.MARKETING.value)
        .order_by(ConsentEvent.captured_at, ConsentEvent.id))
    latest = {(index, channel): mechanism for index, channel, mechanism in found.all()}
    in_force: defaultdict[str, set[str]] = defaultdict(set)
    for (index, channel), mechanism in latest.items():
        if mechanism in GIVING:
            in_force[channel].add(index)
    return {channel: frozenset(indexes) for channel, indexes in in_force.items()}


async def forget_subject(session: AsyncSession, *, tenant: str, subject_index: str,
                         actor: Actor, now: datetime) -> int:
    """The erasure of a person: every consent event of theirs deleted, so that no consent
    stays in force and no token of theirs is left (DSR-3: an opt-out survives as the one
    token of a suppression, not here). ``session`` must be one that may delete from this
    append-only table: on PostgreSQL the system role's (``rt.db.erasing(tenant=SYSTEM)``).
    How many events were deleted; one audit event each, naming ``actor``."""
    ids = list((await session.scalars(select(ConsentEvent.id).where(
        ConsentEvent.tenant_id == tenant, ConsentEvent.subject_index == subject_index))).all())
    if not ids:
        return 0
    await session.execute(delete(ConsentEvent).where(ConsentEvent.id.in_(ids))
                          .execution_options(synchronize_session=False))
    await record(session, [audit_row(tenant=tenant, actor=actor, action="delete",
                                     table="consent_events", row_id=event_id,
                                     fields=["subject", "evidence_ref", "ip_prefix"], now=now)
                           for event_id in ids])
    return len(ids)


async def subject_keys_of(session: AsyncSession, *, tenant: str, index: str) -> list[str]:
    """The keys a person's consent evidence is under: an erasure destroys these too."""
    found = await session.scalars(select(ConsentEvent.subject_key).distinct().where(
        ConsentEvent.tenant_id == tenant, ConsentEvent.subject_index == index,
        ConsentEvent.subject_key.is_not(None)))
    return sorted(key for key in found if key)


async def subject_keys_in_use(session: AsyncSession, *, tenant: str,
                              key_ids: Sequence[str]) -> set[str]:
    """Which of ``key_ids`` consent evidence is under: keys that must outlive the
    messages under them (message retention destroys a key once it has no message)."""
    wanted, used = sorted(set(key_ids)), set[str]()
    for start in range(0, len(wanted), _KEYS_A_QUERY):
        found = await session.scalars(select(ConsentEvent.subject_key).distinct().where(
            ConsentEvent.tenant_id == tenant,
            ConsentEvent.subject_key.in_(wanted[start:start + _KEYS_A_QUERY])))
        used.update(key for key in found if key)
    return used
