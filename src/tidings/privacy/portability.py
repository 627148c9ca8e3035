"""Importing a portability bundle (``portability-v1.json``): a person's messages, taken
from another account or another provider, stored in an account as historical records.

The bundle is checked whole before anything is written, by hand-written models that
follow the published schema (the ``jsonschema`` package is for the tests only): wrong
types, unknown fields, a version this code does not read, strings past the schema's
bounds, and messages that are not about the bundle's person are refused with a
``400 invalid_bundle`` naming the first fault, never its value.

Each message is stored as the send path (outbound) and the inbound path store theirs,
under a key of the person's (``subjects.subjects_for``) with the person's blind index in
``to_index`` or ``from_index``, so that access, erasure and export find it like any
other; with its status as the bundle gives it, one event (``source`` ``import``), one
audit event, and no job or webhook: it is history, never sent. It gets a new id (ids
sort by when they were made, so imported messages list as the newest), and keeps the
bundle's times. What the bundle leaves out is empty: an outbound message's text, the
carrier, error code and schedule; SMS encoding and segments are computed from the text
imported. Importing the same bundle twice stores its messages twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from tidings.accounts.models import AccountStatus
from tidings.accounts.service import ancestry, effective_status
from tidings.audit.service import Actor, audit_row
from tidings.connectors.encoding import segment
from tidings.core.ids import new_id
from tidings.core.logs import get_logger
from tidings.core.services import Services
from tidings.messaging.drafts import UNSEGMENTED
from tidings.messaging.lifecycle import Status
from tidings.messaging.schemas import MAX_EMAIL_ADDRESS_CHARS, MAX_EMAIL_BODY_CHARS
from tidings.messaging.service import PERSONAL_FIELDS
from tidings.privacy.bundles import (
    PAGE_ROWS,
    PORTABILITY_FORMAT_VERSION,
    PORTABILITY_SCHEMA_ID,
    subject_address,
)
from tidings.privacy.subjects import subjects_for
from tidings.storage.ciphers import SubjectKey, TenantKeys
from tidings.storage.db import SYSTEM
from tidings.storage.writer import Rows, write_rows
from tidings.web.errors import Forbidden, InvalidRequest, NotFound

__all__ = ["IMPORT_EVENT_SOURCE", "Imported", "import_bundle"]

log = get_logger("tidings.privacy")

IMPORT_EVENT_SOURCE = "import"
_INVALID = "invalid_bundle"
_MAX_TIMESTAMP_CHARS = 40


@dataclass(frozen=True)
class Imported:
    """How many messages an import stored, by direction."""

    outbound: int
    inbound: int

    @property
    def total(self) -> int:
        return self.outbound + self.inbound


# --------------------------------------------------------------------------- the bundle


def _timestamp(value: object) -> datetime:
    """An RFC 3339 string with an offset, in UTC: a number or a naive time is refused
    (which instant it names would be a guess)."""
    if not isinstance(value, str) or len(value) > _MAX_TIMESTAMP_CHARS:
        raise ValueError("must be an RFC 3339 date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an RFC 3339 date-time string") from None
    if parsed.tzinfo is None:
        raise ValueError("must carry a UTC offset")
    return parsed.astimezone(UTC)


Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
Address = Annotated[str | None, Field(max_length=MAX_EMAIL_ADDRESS_CHARS)]


class _Strict(BaseModel):
    # Strict: a number is no string, "1" no version, true no integer.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Subject(_Strict):
    number: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=MAX_EMAIL_ADDRESS_CHARS)

    @model_validator(mode="after")
    def _exactly_one(self) -> _Subject:
        given = {name for name in ("number", "email") if getattr(self, name) is not None}
        if len(given) != 1 or given != self.model_fields_set:
            raise ValueError("the subject is one number or one email")
        return self

    @property
    def address(self) -> str:
        return str(self.number if self.number is not None else self.email)


class _Message(_Strict):
    id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    direction: Literal["outbound", "inbound"]
    channel: Literal["sms", "email", "whatsapp"]
    status: str = Field(max_length=20)
    to: Address
    from_: Address = Field(alias="from")
    body: str | None = Field(default=None, max_length=MAX_EMAIL_BODY_CHARS)
    created_at: Timestamp
    updated_at: Timestamp

    @model_validator(mode="after")
    def _fits_its_direction(self) -> _Message:
        if self.status not in set(Status):
            raise ValueError(f"status must be one of {sorted(Status)}")
        inbound = self.direction == "inbound"
        if inbound != (self.status == Status.RECEIVED):
            raise ValueError("an inbound message is received, an outbound one never is")
        if inbound != ("body" in self.model_fields_set):
            raise ValueError("an inbound message has a body, an outbound one has none")
        if self.updated_at < self.created_at:
            raise ValueError("updated_at is before created_at")
        return self


class _Bundle(_Strict):
    schema_id: str = Field(alias="schema", max_length=100)
    format_version: int
    request_id: str = Field(min_length=1, max_length=100)
    generated_at: Timestamp
    subject: _Subject
    messages: list[_Message]


def _parse(bundle: Any) -> _Bundle:
    """The bundle, or ``InvalidRequest`` naming its first fault (never a value from it)."""
    if not isinstance(bundle, dict):
        raise InvalidRequest("A portability bundle is a JSON object.", code=_INVALID)
    version = bundle.get("format_version")
    if type(version) is not int or version != PORTABILITY_FORMAT_VERSION:
        raise InvalidRequest(
            f"This bundle's format_version is not one this version of Tidings reads "
            f"(it reads {PORTABILITY_FORMAT_VERSION}).", code="unsupported_bundle_version")
    if bundle.get("schema") != PORTABILITY_SCHEMA_ID:
        raise InvalidRequest(f"This is not a portability bundle: its schema must be "
                             f"{PORTABILITY_SCHEMA_ID}.", code=_INVALID)
    try:
        return _Bundle.model_validate(bundle)
    except ValidationError as exc:
        raise _refusal(exc) from None


def _refusal(exc: ValidationError) -> InvalidRequest:
    """The first fault by place and rule; the field names only, cut short, since a
    stranger's bundle chose them."""
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    where = ".".join(str(part)[:40] for part in first["loc"]) or "the bundle"
    rule = first["msg"].removeprefix("Value error, ")
    more = exc.error_count() - 1
    return InvalidRequest(f"The bundle is not valid at {where}: {rule}"
                          + (f" (and {more} more)." if more else "."), code=_INVALID)


def _check_messages(messages: Sequence[_Message], kind: str, address: str) -> None:
    """Every message about this person, on a channel their kind of address has, once."""
    channels = {"email"} if kind == "email" else {"sms", "whatsapp"}
    seen: set[str] = set()
    for position, message in enumerate(messages):
        where = f"messages.{position}"
        if message.id in seen:
            raise InvalidRequest(f"The bundle is not valid at {where}.id: a second message "
                                 "with that id.", code=_INVALID)
        seen.add(message.id)
        if message.channel not in channels:
            raise InvalidRequest(f"The bundle is not valid at {where}.channel: not a channel "
                                 f"of the person's {kind}.", code=_INVALID)
        theirs = message.to if message.direction == "outbound" else message.from_
        if theirs is not None and _normalised(theirs) != address:
            raise InvalidRequest(f"The bundle is not valid at {where}: the message is not "
                                 "about the bundle's person.", code=_INVALID)


def _normalised(raw: str) -> str | None:
    try:
        return subject_address(raw)[1]
    except InvalidRequest:
        return None


# --------------------------------------------------------------------------- the import


async def import_bundle(rt: Services, *, tenant: str, bundle: dict[str, Any],
                        actor: Actor) -> Imported:
    """Store the person's messages of a portability ``bundle`` in ``tenant`` as
    historical records (never dispatched), in one transaction; counts by direction."""
    parsed = _parse(bundle)
    kind, address = subject_address(parsed.subject.address)
    _check_messages(parsed.messages, kind, address)
    await _check_account(rt, tenant)
    keys = await rt.vault.keys_for(tenant)
    # The person's key before the transaction: nothing in it waits on the key store.
    [subject] = await subjects_for(keys, [address])
    now = rt.clock.now()
    ordered = sorted(parsed.messages, key=lambda m: m.created_at)
    async with rt.db.transaction(tenant=tenant) as session:
        for start in range(0, len(ordered), PAGE_ROWS):
            await write_rows(session, _rows(ordered[start:start + PAGE_ROWS], tenant=tenant,
                                            keys=keys, subject=subject, address=address,
                                            actor=actor, now=now))
    counts = Counter(m.direction for m in ordered)
    imported = Imported(outbound=counts["outbound"], inbound=counts["inbound"])
    log.info("subject_imported", tenant=tenant, outbound=imported.outbound,
             inbound=imported.inbound)
    return imported


async def _check_account(rt: Services, tenant: str) -> None:
    """An account that exists and may process: a terminated one (or one below a
    terminated account) takes nothing, as it takes no inbound message."""
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        chain = await ancestry(session, account_id=tenant)
    if not chain:
        raise NotFound(f"No account {tenant[:60]!r}.", code="account_not_found")
    if effective_status(chain) == AccountStatus.TERMINATED:
        raise Forbidden("The account is terminated.", code="account_terminated")


def _rows(messages: Sequence[_Message], *, tenant: str, keys: TenantKeys,
          subject: SubjectKey, address: str, actor: Actor, now: datetime) -> Rows:
    rows = Rows()
    for message in messages:
        row = _message_row(message, tenant=tenant, keys=keys, subject=subject,
                           address=address)
        rows.add("messages", [row])
        rows.add("message_events", [{
            "tenant_id": tenant, "message_id": row["id"], "seq": 1, "status": message.status,
            "applied": True, "source": IMPORT_EVENT_SOURCE, "error_code": None,
            "connector": None, "created_at": message.updated_at}])
        rows.add("audit_events", [audit_row(
            tenant=tenant, actor=actor, action="create", table="messages",
            row_id=row["id"], fields=PERSONAL_FIELDS, now=now)])
    return rows


def _message_row(message: _Message, *, tenant: str, keys: TenantKeys, subject: SubjectKey,
                 address: str) -> dict[str, Any]:
    """The row as ``messaging.service._message_row`` (outbound) or ``do_receive_inbound``
    (inbound) writes it: the person's side is their normalised address, under their key,
    with their blind index where erasure looks for it."""
    outbound = message.direction == "outbound"
    to = address if outbound else (message.to or "")
    sender = (message.from_ or "") if outbound else address
    body = message.body or ""
    encoding, num_segments = _form(message.channel, body)
    return {
        "id": new_id("msg"), "tenant_id": tenant, "direction": message.direction,
        "channel": message.channel, "status": message.status,
        "to_enc": subject.encrypt(to, field="messages.to"),
        # Never "": erasure scrubs only rows whose to_index is not empty yet.
        "to_index": subject.index if outbound else keys.blind_index(to, field="messages.to"),
        "from_enc": subject.encrypt(sender, field="messages.from"),
        "body_enc": subject.encrypt(body, field="messages.body"),
        "encoding": encoding, "num_segments": num_segments, "status_callback": None,
        "send_at": None, "expires_at": None, "connector": None, "carrier_message_id": None,
        "error_code": None, "smpp_receipt_to": None, "content_enc": None,
        "subject_key": subject.key_id, "from_index": None if outbound else subject.index,
        "fallback_channels": None, "fallback_after": None, "event_count": 1,
        "created_at": message.created_at, "updated_at": message.updated_at,
    }


def _form(channel: str, body: str) -> tuple[str, int]:
    """(encoding, segments) as the inbound path computes them: SMS has both."""
    if channel != "sms":
        return UNSEGMENTED, 1
    segmentation = segment(body)
    return segmentation.encoding, segmentation.num_segments
