"""A data subject's bundles: a copy of their data (access, Art. 15) and their data to
take elsewhere (portability, Art. 20), as JSON for machines and HTML for the person.

Whose data: a person is a phone number (E.164) or an e-mail address within one account
(tenant), found by their blind index as erasure finds them (``erasure.keys_of``): the
outbound messages sent to them (``to_index``) and the inbound messages they sent
(``from_index``). Outbound messages stored before subject keys (``subject_key`` empty)
carry the same ``to_index`` and are found too; inbound messages stored before subject
keys have no ``from_index`` and cannot be found by the person (docs/privacy.md, "Not
covered yet"). Nothing of another account is read: every query names the tenant, and on
PostgreSQL row-level security holds the transaction to it.

The access bundle (``access-v1.json``) is everything stored about the person: each
message with its addresses, text and channel content (e-mail subject and HTML, WhatsApp
template or media), its status, carrier, error code and times; the consent records
(none yet: an empty list until consent is stored); and what is done with it
(``processing_info``).

The portability bundle (``portability-v1.json``) holds only what the person provided or
what was observed about them, never what was inferred or computed:

- messages the person sent (inbound): the addresses (``from``, theirs; ``to``, the
  account's), the text, the channel, the status and the times;
- messages sent to them (outbound): metadata only, the addresses, the channel, the
  delivery status observed and the times; not the text, which the account wrote.

Left out of it: the SMS encoding and segment counts (computed from the text), carriers,
error codes and scheduling (the account's and the carriers' records of their own work),
and ``processing_info``. ``portability.import_bundle`` reads it back.

An erased person has no messages left to find (erasure empties their blind indexes); a
message found whose key is gone (a backup restored before the ledger's replay, or an
erasure that came between the read and the decryption) keeps its metadata and shows its
personal fields as ``null``.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import jinja2
from sqlalchemy import Select, and_, or_, select

from tidings.core.services import Services
from tidings.messaging.addresses import AddressError, normalize_e164, normalize_email
from tidings.messaging.content import CONTENT_FIELD, content_fields
from tidings.messaging.models import Message
from tidings.privacy.subjects import subject_index
from tidings.storage.ciphers import FieldCipher
from tidings.storage.subject_keys import ciphers_of
from tidings.web.errors import InvalidRequest

__all__ = ["ACCESS_SCHEMA_ID", "PORTABILITY_SCHEMA_ID", "SubjectMessage", "SubjectRecords",
           "access_bundle", "collect_subject", "portability_bundle", "processing_info",
           "render_html", "schema", "subject_address"]

SCHEMA_BASE = "https://tidings.dev/schemas/privacy/"
ACCESS_SCHEMA_ID = SCHEMA_BASE + "access-v1.json"
PORTABILITY_SCHEMA_ID = SCHEMA_BASE + "portability-v1.json"
PORTABILITY_FORMAT_VERSION = 1
_SCHEMA_FILES = {"access-v1": "access-v1.json", "portability-v1": "portability-v1.json"}
# Rows read at a time: a person with 100,000 messages is read in pages, each in a short
# transaction of its own, with the keys of a page looked up at once.
PAGE_ROWS = 1_000


# --------------------------------------------------------------------------- the records


@dataclass(frozen=True)
class SubjectMessage:
    """One message about the person, decrypted; the personal fields are ``None`` when the
    person's key is gone (``erased``)."""

    id: str
    direction: str
    channel: str
    status: str
    to: str | None
    sender: str | None
    body: str | None
    subject: str | None
    html: str | None
    template: dict[str, Any] | None
    media: dict[str, Any] | None
    encoding: str
    num_segments: int
    connector: str | None
    error_code: str | None
    send_at: datetime | None
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    erased: bool


@dataclass(frozen=True)
class SubjectRecords:
    """Everything stored about one person in one tenant, oldest first."""

    tenant: str
    kind: str  # "number" or "email"
    address: str
    messages: tuple[SubjectMessage, ...]

    @property
    def connectors(self) -> list[str]:
        """The carriers their messages went through, by connector name: the recipients
        of their data (``processing_info``)."""
        return sorted({m.connector for m in self.messages if m.connector})


def subject_address(raw: str) -> tuple[str, str]:
    """(kind, address) of a person: ``number`` in E.164 or ``email``, normalised as the
    send path normalises them, so the blind index matches the one stored."""
    try:
        if "@" in raw:
            return "email", normalize_email(raw)
        return "number", normalize_e164(raw)
    except AddressError as exc:
        raise InvalidRequest(f"The person's address is not valid: {exc.message}",
                             code=exc.code) from None


async def collect_subject(rt: Services, *, tenant: str, address: str) -> SubjectRecords:
    """Every message of the person at ``address`` in ``tenant`` (and no other tenant),
    both directions, ordered by ``created_at`` then id, decrypted."""
    kind, address = subject_address(address)
    keys = await rt.vault.keys_for(tenant)
    index = subject_index(keys, address)
    found: list[SubjectMessage] = []
    after: tuple[datetime, str] | None = None
    while True:
        async with rt.db.transaction(tenant=tenant, write=False) as session:
            rows = list((await session.scalars(_page(tenant, index, after))).all())
        ciphers = await ciphers_of(keys, rows)
        found.extend(_decrypted(row, ciphers[row.id]) for row in rows)
        if len(rows) < PAGE_ROWS:
            return SubjectRecords(tenant, kind, address, tuple(found))
        after = (rows[-1].created_at, rows[-1].id)


def _page(tenant: str, index: str, after: tuple[datetime, str] | None) -> Select[Message]:
    """The next page after ``after`` (keyset: no offset to skip over). The two
    conditions are the two indexes erasure uses; outbound only for ``to_index``, since an
    inbound message's ``to_index`` is the account's own number."""
    about = or_(and_(Message.to_index == index, Message.direction == "outbound"),
                Message.from_index == index)
    query = select(Message).where(Message.tenant_id == tenant, about)
    if after is not None:
        created, last_id = after
        query = query.where(or_(Message.created_at > created,
                                and_(Message.created_at == created, Message.id > last_id)))
    return query.order_by(Message.created_at, Message.id).limit(PAGE_ROWS)


def _decrypted(row: Message, cipher: FieldCipher | None) -> SubjectMessage:
    """The row as ``messaging.service.message_out`` reads it: the same fields, the same
    associated data; a scrubbed ciphertext (empty) reads as erased."""
    erased = cipher is None or not row.body_enc
    content = content_fields(_clear(cipher, row.content_enc, CONTENT_FIELD))
    return SubjectMessage(
        id=row.id, direction=row.direction, channel=row.channel, status=row.status,
        to=_clear(cipher, row.to_enc, "messages.to"),
        sender=_clear(cipher, row.from_enc, "messages.from"),
        body=_clear(cipher, row.body_enc, "messages.body"),
        subject=content["subject"], html=content["html"], template=content["template"],
        media=content["media"], encoding=row.encoding, num_segments=row.num_segments,
        connector=row.connector, error_code=row.error_code, send_at=row.send_at,
        expires_at=row.expires_at, created_at=row.created_at, updated_at=row.updated_at,
        erased=erased)


def _clear(cipher: FieldCipher | None, blob: bytes | None, field: str) -> str | None:
    if cipher is None or not blob:
        return None
    return cipher.decrypt(blob, field=field)


# --------------------------------------------------------------------------- the bundles


def access_bundle(records: SubjectRecords, *, request_id: str, generated_at: datetime,
                  processing: dict[str, Any]) -> dict[str, Any]:
    """The copy of Art. 15 as JSON-ready data (``access-v1.json``); ``processing`` from
    ``processing_info``."""
    return {
        "schema": ACCESS_SCHEMA_ID,
        "request_id": request_id,
        "generated_at": generated_at.isoformat(),
        "subject": {records.kind: records.address},
        "messages": [_access_message(m) for m in records.messages],
        "consents": [],  # no consent is stored yet: access-v1.json says so
        "processing_info": processing,
    }


def _access_message(m: SubjectMessage) -> dict[str, Any]:
    return {
        "id": m.id, "direction": m.direction, "channel": m.channel, "status": m.status,
        "to": m.to, "from": m.sender, "body": m.body, "subject": m.subject, "html": m.html,
        "template": m.template, "media": m.media, "encoding": m.encoding,
        "num_segments": m.num_segments, "connector": m.connector,
        "error_code": m.error_code, "send_at": _iso(m.send_at),
        "expires_at": _iso(m.expires_at), "created_at": m.created_at.isoformat(),
        "updated_at": m.updated_at.isoformat(), "erased": m.erased,
    }


def portability_bundle(records: SubjectRecords, *, request_id: str,
                       generated_at: datetime) -> dict[str, Any]:
    """The export of Art. 20 (``portability-v1.json``): what the person provided and
    what was observed, nothing inferred (see the module's docstring for the fields)."""
    return {
        "schema": PORTABILITY_SCHEMA_ID,
        "format_version": PORTABILITY_FORMAT_VERSION,
        "request_id": request_id,
        "generated_at": generated_at.isoformat(),
        "subject": {records.kind: records.address},
        "messages": [_portable_message(m) for m in records.messages],
    }


def _portable_message(m: SubjectMessage) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": m.id, "direction": m.direction, "channel": m.channel, "status": m.status,
        "to": m.to, "from": m.sender, "created_at": m.created_at.isoformat(),
        "updated_at": m.updated_at.isoformat()}
    if m.direction == "inbound":  # their own words; an outbound text is the account's
        message["body"] = m.body
    return message


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# --------------------------------------------------------------------------- processing


def processing_info(*, tenant_name: str, connectors: list[str],
                    message_body_days: int) -> dict[str, Any]:
    """What is done with the person's data, for the access bundle: purposes, categories,
    recipients, retention per category, sources and rights. ``tenant_name`` is the
    account (the controller); ``connectors`` the carriers their messages went through
    (``SubjectRecords.connectors``). Every statement is what the code does today."""
    return copy.deepcopy({  # the caller's to change: nothing shared with the next bundle
        "controller": tenant_name,
        "purposes": PURPOSES,
        "data_categories": _CATEGORIES,
        "recipients": [{"name": name, "kind": "carrier",
                        "description": "A carrier (connector) that carried messages to "
                                       "or from you."} for name in sorted(set(connectors))],
        "retention": [{**item, "period": item["period"].format(days=message_body_days)}
                      for item in _RETENTION],
        "sources": [
            {"data": "Messages sent to you", "source": f"{tenant_name} (the client)"},
            {"data": "Messages you sent", "source": "You"},
            {"data": "Delivery status", "source": "The carriers that carried the message"},
        ],
        "rights": RIGHTS,
    })


PURPOSES = [
    {"id": "message_delivery",
     "description": "Carrying the client's messages to you, and your messages to the client, "
                    "through carriers (SMS, WhatsApp, e-mail)."},
    {"id": "delivery_reporting",
     "description": "Telling the client whether each message was delivered: statuses, "
                    "carriers' receipts and webhooks to the client."},
    {"id": "message_history",
     "description": "Keeping the client's record of the messages exchanged with you, "
                    "readable through its API and portal."},
    {"id": "audit",
     "description": "Recording who created each message and who erased it: the names of "
                    "the fields, never their values."},
]
_CATEGORIES = [
    {"category": "user.contact.phone_number",
     "description": "Your phone number, as a message's recipient or sender."},
    {"category": "user.contact.email",
     "description": "Your e-mail address, as a message's recipient or sender."},
    {"category": "user.content.private",
     "description": "The messages' text, e-mail subject and HTML, WhatsApp template "
                    "variables and media links."},
    {"category": "user.unique_id.deterministic",
     "description": "A keyed hash (blind index) of your number or address, by which your "
                    "messages are found without storing the number in clear."},
    {"category": "system.operations",
     "description": "Each message's metadata: direction, channel, status, carrier, error "
                    "code and times."},
]
_RETAINED = ("{days} days after each message, encrypted under a key of your own; then the "
             "message keeps only your number's country and type, its status and its day, "
             "and your key is destroyed once no message needs it. Sooner if you are "
             "erased, and within six months of the end of the client's account.")
_RETENTION = [
    {"category": "user.contact.phone_number", "period": _RETAINED},
    {"category": "user.contact.email", "period": _RETAINED},
    {"category": "user.content.private", "period": _RETAINED},
    {"category": "user.unique_id.deterministic",
     "period": "As long as the message keeps your number or address: removed with it "
               "({days} days), or when you are erased."},
    {"category": "system.operations",
     "period": "Kept with the message, also after its retention or your erasure (the "
               "message then keeps its status, channel, counts and day only), until the "
               "client's account is purged."},
]
RIGHTS = [
    {"right": "access", "article": "GDPR Art. 15",
     "description": "You may have a copy of your data and of this information."},
    {"right": "rectification", "article": "GDPR Art. 16",
     "description": "You may have inaccurate data about you corrected."},
    {"right": "erasure", "article": "GDPR Art. 17",
     "description": "You may have your data erased: your key is destroyed, and nothing of "
                    "yours can be read again."},
    {"right": "restriction", "article": "GDPR Art. 18",
     "description": "You may have the processing of your data restricted, for instance "
                    "while its accuracy is checked."},
    {"right": "portability", "article": "GDPR Art. 20",
     "description": "You may have the data you provided, in a machine-readable format, "
                    "for yourself or for another provider."},
    {"right": "objection", "article": "GDPR Art. 21",
     "description": "You may object to the processing of your data, and to direct "
                    "marketing at any time."},
    {"right": "complaint", "article": "GDPR Art. 77",
     "description": "You may complain to a data-protection supervisory authority."},
]


# --------------------------------------------------------------------------- formats


def render_html(bundle: dict[str, Any]) -> str:
    """The bundle as one standalone HTML document the person can read (every value
    escaped: a message's text is data, never markup)."""
    return _templates().get_template("bundle.html").render(bundle=bundle)


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tidings.privacy", "templates"), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def schema(name: str) -> dict[str, Any]:
    """The published JSON Schema ``access-v1`` or ``portability-v1`` (a fresh copy);
    ``KeyError`` for any other name."""
    loaded: dict[str, Any] = json.loads(_schema_text(_SCHEMA_FILES[name]))
    return loaded


@functools.cache
def _schema_text(filename: str) -> str:
    return resources.files("tidings.privacy").joinpath("json_schemas", filename).read_text("utf-8")

