"""HTTP endpoints of consent records (``/v1/consents``): record an event, read a
person's history and state, import a CSV of events. The functions below the endpoints
are the portal's and the CLI's too, so every front door checks and audits alike."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.datastructures import UploadFile

from tidings.accounts.deps import MayManageConsents
from tidings.audit.service import Actor, actor_label
from tidings.consents.imports import check_file
from tidings.consents.marketing import consents_changed
from tidings.consents.models import ConsentEvent
from tidings.consents.rules import ConsentChannel, ConsentState, address_kind, state_of
from tidings.consents.schemas import (
    ConsentEventOut,
    ConsentHistoryOut,
    ConsentImportOut,
    ConsentStateOut,
    RecordConsent,
    RecordedConsentOut,
)
from tidings.consents.service import (
    CheckedConsent,
    check_consent,
    event_row,
    events_of,
    evidence_of,
    new_event_ids,
    parse_subject,
    store_events,
)
from tidings.core.services import Services
from tidings.privacy.subjects import subject_index, subjects_for
from tidings.storage.ciphers import FieldCipher
from tidings.storage.subject_keys import ciphers_of
from tidings.storage.vault import TenantKeys
from tidings.web.deps import PROBLEMS_OF_API_KEY_ROUTES, KnownQueryOnly, RuntimeDep
from tidings.web.errors import InvalidRequest, problem_responses

__all__ = ["consent_history", "import_consents", "record_consent", "router"]

router = APIRouter(prefix="/v1/consents", tags=["consents"],
                   responses=PROBLEMS_OF_API_KEY_ROUTES)

IMPORT_CHUNK = 1_000  # events a transaction: a large file never holds the write lock long
ERRORS_LISTED = 1_000
CSV_TYPES = ("text/csv", "application/csv")
# The form is what the description declares: client generators know it, not text/csv,
# which the endpoint takes all the same (its description says so).
_IMPORT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}}}},
}}}


# --------------------------------------------------------------------------- recording


@router.post("", status_code=201, response_model=RecordedConsentOut,
             summary="Record a consent event", operation_id="record_consent",
             responses=problem_responses(413))
async def record_endpoint(body: RecordConsent, rt: RuntimeDep,
                          principal: MayManageConsents) -> RecordedConsentOut:
    """Append an opt-in, a soft opt-in (e-mail) or an opt-out of a person, with its
    proof; nothing is ever changed or deleted: a change of mind is a new event."""
    return await record_consent(rt, tenant=principal.tenant, body=body,
                                actor=principal.actor)


async def record_consent(rt: Services, *, tenant: str, body: RecordConsent,
                         actor: Actor) -> RecordedConsentOut:
    now = rt.clock.now()
    consent = check_consent(body, now=now)
    keys = await rt.vault.keys_for(tenant)
    [key] = await subjects_for(keys, [consent.address])  # before the transaction opens
    [event_id] = new_event_ids(1)
    row = event_row(tenant=tenant, event_id=event_id,
                    index=subject_index(keys, consent.address), key=key, consent=consent,
                    captured_by=actor_label(actor), now=now)
    async with rt.db.transaction(tenant=tenant) as session:
        await store_events(session, tenant=tenant, rows=[row], fields=[consent.fields()],
                           actor=actor, now=now)
    consents_changed(tenant)
    return RecordedConsentOut(subject={consent.kind: consent.address},
                              **_plain_event(row, consent))


def _plain_event(row: dict[str, Any], consent: CheckedConsent) -> dict[str, Any]:
    """An event just stored, as the answer shows it (its proof as it was given)."""
    return {"id": row["id"], "channel": row["channel"], "purpose": row["purpose"],
            "mechanism": row["mechanism"], "source": row["source"],
            "evidence_ref": consent.evidence_ref, "text_version": row["text_version"],
            "text_sha256": row["text_sha256"], "ip_prefix": consent.ip_prefix,
            "captured_at": row["captured_at"], "captured_by": row["captured_by"],
            "recorded_at": row["recorded_at"]}


# --------------------------------------------------------------------------- reading


@router.get("", response_model=ConsentHistoryOut,
            summary="A person's consent events and the state in force",
            operation_id="get_consents", dependencies=[KnownQueryOnly])
async def history_endpoint(
        rt: RuntimeDep, principal: MayManageConsents,
        number: Annotated[str | None, Query(max_length=40)] = None,
        email: Annotated[str | None, Query(max_length=254)] = None,
        channel: ConsentChannel | None = None) -> ConsentHistoryOut:
    """Name the person by `number` or `email`; `channel` keeps that channel's events."""
    return await consent_history(rt, tenant=principal.tenant, number=number, email=email,
                                 channel=channel)


async def consent_history(rt: Services, *, tenant: str, number: str | None,
                          email: str | None,
                          channel: ConsentChannel | None = None) -> ConsentHistoryOut:
    """A person's events, oldest first, and the state on each channel and purpose.
    Another account's person is nobody here: their events are not found."""
    kind, address = parse_subject(number=number, email=email)
    if channel is not None and address_kind(channel) != kind:
        raise InvalidRequest(f"The {channel.value} channel reaches "
                             f"{'an e-mail address' if kind == 'number' else 'a number'}.",
                             code="subject_channel_mismatch", parameter="channel")
    keys = await rt.vault.keys_for(tenant)
    index = subject_index(keys, address)
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        rows = await events_of(session, tenant=tenant, index=index,
                               channel=None if channel is None else channel.value)
    ciphers = await ciphers_of(keys, rows)
    return ConsentHistoryOut(subject={kind: address},
                             events=[event_out(ciphers[row.id], row) for row in rows],
                             state=[state_out(state) for state in state_of(rows)])


def event_out(cipher: FieldCipher | None, row: ConsentEvent) -> ConsentEventOut:
    evidence, ip = evidence_of(cipher, row)
    return ConsentEventOut(
        id=row.id, channel=row.channel, purpose=row.purpose, mechanism=row.mechanism,
        source=row.source, evidence_ref=evidence, text_version=row.text_version,
        text_sha256=row.text_sha256, ip_prefix=ip, captured_at=row.captured_at,
        captured_by=row.captured_by, recorded_at=row.recorded_at)


def state_out(state: ConsentState) -> ConsentStateOut:
    return ConsentStateOut(channel=state.channel, purpose=state.purpose,
                           in_force=state.in_force, mechanism=state.mechanism,
                           since=state.since)


# --------------------------------------------------------------------------- importing


@router.post("/imports", status_code=201, response_model=ConsentImportOut,
             summary="Import consent events from a CSV file",
             operation_id="import_consents", responses=problem_responses(413),
             openapi_extra=_IMPORT_BODY)
async def import_endpoint(request: Request, rt: RuntimeDep,
                          principal: MayManageConsents) -> ConsentImportOut:
    """The CSV as the body (`text/csv`) or as the `file` of a form
    (`multipart/form-data`). Every row is checked first; the good ones are imported and
    each bad one reported by row, column and reason. A file with no good row imports
    nothing: `400 no_rows_imported`, with `row_errors`."""
    raw = await _csv_body(request)
    return await import_consents(rt, tenant=principal.tenant, raw=raw, actor=principal.actor)


async def _csv_body(request: Request) -> bytes:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in CSV_TYPES:
        return await request.body()
    if media == "multipart/form-data":
        form = await request.form()
        file = form.get("file")
        if isinstance(file, UploadFile):
            return await file.read()
        raise InvalidRequest("The form has no file named file.", code="file_missing",
                             parameter="file")
    raise InvalidRequest("Send the CSV as the body (Content-Type: text/csv) or as the file "
                         "of a multipart/form-data form.", code="unsupported_media_type",
                         parameter="content-type")


async def import_consents(rt: Services, *, tenant: str, raw: bytes,
                          actor: Actor) -> ConsentImportOut:
    """Check every row of ``raw``, then store the good ones, ``IMPORT_CHUNK`` to a
    transaction; a file without a good row is refused whole (``no_rows_imported``)."""
    now = rt.clock.now()
    checked = check_file(raw, now=now)
    errors = [error.model_dump() for error in checked.errors[:ERRORS_LISTED]]
    if not checked.good:
        raise InvalidRequest(
            f"No row could be imported: {checked.refused} refused; nothing was stored.",
            code="no_rows_imported", refused=checked.refused, row_errors=errors)
    consents = [consent for _, consent in checked.good]
    keys = await rt.vault.keys_for(tenant)
    for start in range(0, len(consents), IMPORT_CHUNK):
        await _store_chunk(rt, keys, consents[start:start + IMPORT_CHUNK], actor=actor,
                           now=now)
    return ConsentImportOut(imported=len(consents), refused=checked.refused,
                            errors=checked.errors[:ERRORS_LISTED])


async def _store_chunk(rt: Services, keys: TenantKeys, chunk: Sequence[CheckedConsent], *,
                       actor: Actor, now: datetime) -> None:
    """One transaction of events; their people's keys found before it opens (a pool run
    dry is refilled from the key store, which no transaction should wait on)."""
    tenant, label = keys.tenant_id, actor_label(actor)
    people = await subjects_for(keys, [consent.address for consent in chunk])
    rows = [event_row(tenant=tenant, event_id=event_id,
                      index=subject_index(keys, consent.address), key=key, consent=consent,
                      captured_by=label, now=now)
            for event_id, consent, key in zip(new_event_ids(len(chunk)), chunk, people,
                                              strict=True)]
    async with rt.db.transaction(tenant=tenant) as session:
        await store_events(session, tenant=tenant, rows=rows,
                           fields=[consent.fields() for consent in chunk], actor=actor,
                           now=now)
    consents_changed(tenant)
