"""What Meta posts to our webhook URL, as pure functions (no HTTP, no database).

The HTTP routes call these in order:

* ``GET``: ``verify_handshake(request.query, verify_token)``; echo the challenge
  (``text/plain``, 200) or answer 403 on ``None``.
* ``POST``: ``signature_valid(raw_body, request.headers.get(SIGNATURE_HEADER),
  app_secret)`` on the raw bytes, before any parsing (403 when ``False``), then
  ``parse_events(raw_body)``; a ``WebhookPayloadError`` is a 400.

How statuses and customer messages become events:

* ``sent`` is not final: its wamid goes to ``WebhookEvents.sent``, no report.
* ``delivered`` gives a final ``delivered`` report.
* ``read`` also gives a ``delivered`` report (a read message was delivered, and
  the "delivered" status may never arrive, or arrive after it), and its wamid
  goes to ``WebhookEvents.reads`` so the pipeline can record a read event.
  Status changes are forward-only, so "delivered" then "read" is one delivery.
* ``failed`` gives a final ``failed`` report with error ``whatsapp:<code>`` of
  the status's first error (``whatsapp_failed`` when it names none).
* Any other status (``deleted``, ``warning``, future ones) is ignored.
* A customer message becomes an ``InboundMessage`` (channel ``whatsapp``, sender
  ``+<from>``, to ``+<our display number's digits>``). Its body is the text of a
  text message, ``[image]`` (``[video]``, ``[document]``...) for media (media is
  not downloaded), followed by a space and the caption if there is one, the
  button's text or the chosen reply's title for button and interactive replies,
  and ``[<type>]`` for anything else (location, contacts, reaction...).
  Every one is also a ``customer_messages`` entry for the 24-hour window.
  ``system`` messages (WhatsApp's own notices, such as a number change) are
  neither: the customer did not write them.
* ``value.errors`` (a problem with the app, the account or the whole service, such
  as a rate-limit notice) become ``WebhookEvents.errors``: the code and the title,
  never the message or details, which may quote a number. They are about the
  connector, not about one message: a message's own failure arrives as a
  ``failed`` status with ``statuses[].errors``, read as above.
* Changes of another webhook field (``message_template_status_update``...) are
  skipped; they carry no message events.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import orjson

from tidings.connectors.base import DeliveryReport, InboundMessage

SIGNATURE_HEADER = "X-Hub-Signature-256"
CHANNEL = "whatsapp"

_SIGNATURE_PREFIX = "sha256="
_SIGNATURE_HEX = re.compile(r"[0-9a-fA-F]{64}")
# Meta's challenge is a number; anything else is not echoed (the route reflects it).
_CHALLENGE = re.compile(r"[A-Za-z0-9._-]{1,256}")
# [0-9], not \d: \d also matches non-ASCII digits.
_WA_ID = re.compile(r"[1-9][0-9]{1,14}")
_DIGITS = re.compile(r"[0-9]+")
_NOT_DIGITS = re.compile(r"[^0-9]")
_TITLE_CHARS = 200
_MEDIA_TYPES = frozenset({"image", "video", "document", "audio", "sticker"})
_T = TypeVar("_T")


@dataclass(frozen=True)
class CloudApiError:
    """A value-level error Meta reported about the connector (not about one message)."""

    code: int
    title: str


class WebhookPayloadError(ValueError):
    """The body is not a WhatsApp webhook payload we can read (bad JSON, wrong shape)."""


@dataclass
class WebhookEvents:
    """Everything one webhook delivery said, in payload order."""

    reports: list[DeliveryReport] = field(default_factory=list)
    """Final statuses (delivered, read as delivered, failed) for the report sink."""
    reads: list[str] = field(default_factory=list)
    """wamids the recipient read (each also has a ``delivered`` report)."""
    sent: list[str] = field(default_factory=list)
    """wamids WhatsApp confirmed as sent; not final."""
    inbound: list[InboundMessage] = field(default_factory=list)
    """Customer messages for the inbound sink."""
    inbound_ids: list[str] = field(default_factory=list)
    """The wamid of each ``inbound`` message, same order: Meta may post a payload
    more than once, and these let the pipeline take each message once."""
    customer_messages: list[tuple[str, str, int]] = field(default_factory=list)
    """(customer number, our number, unix seconds) of each customer message, E.164."""
    phone_number_ids: list[str] = field(default_factory=list)
    """Our phone number ids the payload is about (to find their connectors)."""
    errors: list[CloudApiError] = field(default_factory=list)
    """Value-level errors (``value.errors[]``): about the connector, not a message."""


def verify_handshake(params: Mapping[str, str], verify_token: str) -> str | None:
    """The ``hub.challenge`` to echo when Meta's subscription check is right, else None.

    Right means ``hub.mode=subscribe``, ``hub.verify_token`` equal to ours (compared
    in constant time), and a challenge that looks like one. An empty configured
    token never verifies.
    """
    mode, token = params.get("hub.mode"), params.get("hub.verify_token")
    challenge = params.get("hub.challenge")
    if not verify_token or mode != "subscribe" or token is None or challenge is None:
        return None
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        return None
    return challenge if _CHALLENGE.fullmatch(challenge) else None


def signature_valid(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """Whether ``X-Hub-Signature-256`` is ``sha256=`` + the hex HMAC-SHA256 of the raw
    body under the app secret. Missing or malformed headers, and an empty secret
    (anyone could sign with it), are never valid."""
    if not app_secret or header is None or not header.startswith(_SIGNATURE_PREFIX):
        return False
    given = header[len(_SIGNATURE_PREFIX):]
    if not _SIGNATURE_HEX.fullmatch(given):
        return False
    expected = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given.lower())


def parse_events(raw_body: bytes, *, phone_number_id: str | None = None) -> WebhookEvents:
    """The events of one webhook body; only those of ``phone_number_id`` if given.

    Raises ``WebhookPayloadError`` (and nothing else) for a body that is not a
    WhatsApp Business Account webhook of the documented shape.
    """
    try:
        payload = orjson.loads(raw_body)
    except orjson.JSONDecodeError:
        raise WebhookPayloadError("the body is not valid JSON") from None
    payload = _expect(payload, dict, "payload")
    if payload.get("object") != "whatsapp_business_account":
        raise WebhookPayloadError("not a WhatsApp Business Account webhook")
    events = WebhookEvents()
    for entry in _list_of(payload.get("entry"), dict, "entry"):
        for change in _list_of(entry.get("changes"), dict, "entry.changes"):
            _read_change(change, events, phone_number_id)
    return events


def _read_change(change: dict[str, object], events: WebhookEvents,
                 wanted_number_id: str | None) -> None:
    if _optional(change.get("field"), str, "change.field") not in (None, "messages"):
        return
    value = _expect(change.get("value"), dict, "change.value")
    metadata = _expect(value.get("metadata"), dict, "value.metadata")
    number_id = _expect(metadata.get("phone_number_id"), str, "metadata.phone_number_id")
    our_number = _display_number(metadata.get("display_phone_number"))
    if number_id not in events.phone_number_ids:
        events.phone_number_ids.append(number_id)
    if wanted_number_id is not None and number_id != wanted_number_id:
        return
    for status in _list_of(value.get("statuses", []), dict, "value.statuses"):
        _read_status(status, events)
    for message in _list_of(value.get("messages", []), dict, "value.messages"):
        _read_message(message, our_number, events)
    for error in _list_of(value.get("errors", []), dict, "value.errors"):
        events.errors.append(_cloud_api_error(error))


def _read_status(status: dict[str, object], events: WebhookEvents) -> None:
    wamid = _expect(status.get("id"), str, "status.id")
    state = _expect(status.get("status"), str, "status.status")
    if state == "sent":
        events.sent.append(wamid)
    elif state == "delivered":
        events.reports.append(DeliveryReport(wamid, "delivered"))
    elif state == "read":
        events.reports.append(DeliveryReport(wamid, "delivered"))
        events.reads.append(wamid)
    elif state == "failed":
        events.reports.append(DeliveryReport(wamid, "failed", _failure_code(status)))


def _failure_code(status: dict[str, object]) -> str:
    errors = _list_of(status.get("errors", []), dict, "status.errors")
    if not errors:
        return "whatsapp_failed"
    return f"whatsapp:{_error_code(errors[0], 'status.errors[].code')}"


def _cloud_api_error(error: dict[str, object]) -> CloudApiError:
    code = _error_code(error, "value.errors[].code")
    title = _optional(error.get("title"), str, "value.errors[].title") or ""
    return CloudApiError(code, title[:_TITLE_CHARS])


def _error_code(error: dict[str, object], where: str) -> int:
    code = error.get("code")
    if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code < 2**31:
        raise WebhookPayloadError(f"{where} must be an integer")
    return code


def _read_message(message: dict[str, object], our_number: str, events: WebhookEvents) -> None:
    sender = _expect(message.get("from"), str, "message.from")
    if not _WA_ID.fullmatch(sender):
        raise WebhookPayloadError("message.from must be a WhatsApp id (digits)")
    wamid = _expect(message.get("id"), str, "message.id")
    sent_at = _unix_seconds(message.get("timestamp"))
    kind = _expect(message.get("type"), str, "message.type")
    if kind == "system":
        return
    customer = "+" + sender
    events.inbound.append(InboundMessage(CHANNEL, customer, our_number, _body(message, kind),
                                         carrier_message_id=wamid))
    events.inbound_ids.append(wamid)
    events.customer_messages.append((customer, our_number, sent_at))


def _body(message: dict[str, object], kind: str) -> str:
    if kind == "text":
        text = _expect(message.get("text"), dict, "message.text")
        return _expect(text.get("body"), str, "message.text.body")
    if kind in _MEDIA_TYPES:
        media = _optional(message.get(kind), dict, f"message.{kind}") or {}
        caption = _optional(media.get("caption"), str, f"message.{kind}.caption")
        return f"[{kind}] {caption}" if caption else f"[{kind}]"
    if kind == "button":
        button = _optional(message.get("button"), dict, "message.button") or {}
        return _optional(button.get("text"), str, "message.button.text") or "[button]"
    if kind == "interactive":
        return _interactive_title(message) or "[interactive]"
    return f"[{kind}]"


def _interactive_title(message: dict[str, object]) -> str | None:
    interactive = _optional(message.get("interactive"), dict, "message.interactive") or {}
    for reply_kind in ("button_reply", "list_reply"):
        reply = _optional(interactive.get(reply_kind), dict, f"interactive.{reply_kind}")
        if reply is not None:
            return _optional(reply.get("title"), str, f"interactive.{reply_kind}.title")
    return None


def _display_number(value: object) -> str:
    # Shown as the business formats it ("+1 555-010-0199" as well as "15550100199").
    shown = _expect(value, str, "metadata.display_phone_number")
    digits = _NOT_DIGITS.sub("", shown)
    if not _WA_ID.fullmatch(digits):
        raise WebhookPayloadError("metadata.display_phone_number is not a phone number")
    return "+" + digits


def _unix_seconds(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value) and len(value) <= 12:
        return int(value)
    raise WebhookPayloadError("message.timestamp must be unix seconds")


def _expect(value: object, kind: type[_T], where: str) -> _T:
    if not isinstance(value, kind):
        raise WebhookPayloadError(f"{where} must be {_type_name(kind)}")
    return value


def _optional(value: object, kind: type[_T], where: str) -> _T | None:
    return None if value is None else _expect(value, kind, where)


def _list_of(value: object, kind: type[_T], where: str) -> list[_T]:
    items = _expect(value, list, where)
    return [_expect(item, kind, f"{where}[]") for item in items]


def _type_name(kind: type) -> str:
    names: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}
    return names.get(kind, kind.__name__)
