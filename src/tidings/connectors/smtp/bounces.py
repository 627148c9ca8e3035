"""What arrives at the SMTP listener: a bounce of a mail we sent, or an inbound message.

Pure functions over bytes (fuzzed in the tests); nothing here raises on garbage.

How a bounce finds its way back to our message:

* Every mail we send has ``Message-ID: <{message_id}@{mail_domain}>``; the carrier
  id of the message is that id without the angle brackets (``carrier_message_id``).
* With a bounce domain, the envelope sender is ``bounces+{message_id}@{bounce_domain}``
  (VERP, ``bounce_address``), so a bounce reaches us, and names our message in its
  recipient even when it quotes nothing of the original.
* Otherwise the bounce must quote the original ``Message-ID`` (a ``message/rfc822`` or
  ``text/rfc822-headers`` part, or the original's headers pasted in the text).

What is a bounce: an RFC 3464 DSN (``multipart/report; report-type=delivery-status``),
or, for MTAs that send none, mail from ``MAILER-DAEMON``/``postmaster``, or with a null
envelope sender and a bounce-like subject. Its outcome: ``Action: failed`` or a 5.x.x
status is ``undelivered`` with ``smtp_dsn:<status>`` (``smtp_bounce`` when it names no
status); ``delayed`` or 4.x.x is not final (``status=None``); ``delivered`` is
``delivered``; a DSN that states none of these is not applied.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from email.utils import collapse_rfc2231_value, parseaddr
from html.parser import HTMLParser

from tidings.connectors.base import FinalReport, InboundMessage

VERP_PREFIX = "bounces+"
BOUNCE_NO_STATUS = "smtp_bounce"  # a bounce that names no status code
_DAEMONS = frozenset({"mailer-daemon", "postmaster"})
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status )?notification|delivery fail|failure notice"
    r"|returned mail|non-delivery|mail delivery|could not be delivered", re.IGNORECASE)
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_QUOTED_MESSAGE_ID = re.compile(r"^[ \t>]*Message-ID:[ \t]*<([^<>\s]+)>", re.IGNORECASE | re.M)
_ANGLE_ID = re.compile(r"<([^<>\s]+)>")
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]+\Z")


@dataclass(frozen=True)
class Bounce:
    """A delivery status notification, read."""

    original_message_id: str | None  # the bounced mail's Message-ID, without <>
    status: FinalReport | None  # None: not final (a delay notice)
    error_code: str | None  # e.g. "smtp_dsn:5.1.1"


# --- how we name our mails ----------------------------------------------------------


def carrier_message_id(message_id: str, mail_domain: str) -> str:
    """The carrier id of a mail we send: its Message-ID without the angle brackets."""
    return f"{message_id}@{mail_domain}"


def is_safe_message_id(message_id: str) -> bool:
    """Whether ``message_id`` can go in a header and a local part as it is."""
    return _SAFE_ID.match(message_id) is not None


def bounce_address(message_id: str, bounce_domain: str) -> str:
    """The envelope sender (VERP) that brings the bounces of ``message_id`` back to us."""
    return f"{VERP_PREFIX}{message_id}@{bounce_domain}"


def message_id_from_bounce_address(address: str, bounce_domain: str) -> str | None:
    """The message id a VERP ``bounce_address`` names, or None if it is not one."""
    local, _, domain = address.rpartition("@")
    if domain.lower() != bounce_domain.lower() or not local.startswith(VERP_PREFIX):
        return None
    message_id = local[len(VERP_PREFIX):]
    return message_id if message_id and is_safe_message_id(message_id) else None


def match_bounce(bounce: Bounce, *, recipients: Sequence[str], mail_domain: str,
                 bounce_domain: str | None) -> str | None:
    """The carrier id of our mail that ``bounce`` is about, or None if it is not ours."""
    if bounce_domain:
        for recipient in recipients:
            message_id = message_id_from_bounce_address(recipient, bounce_domain)
            if message_id is not None:
                return carrier_message_id(message_id, mail_domain)
    original = bounce.original_message_id
    if original is not None and original.lower().endswith("@" + mail_domain.lower()):
        return original
    return None


# --- reading ------------------------------------------------------------------------


def parse(raw: bytes, *, envelope_sender: str,
          recipients: Sequence[str]) -> Bounce | list[InboundMessage] | None:
    """Read one received mail: a ``Bounce``, or one ``InboundMessage`` per recipient.

    None if the mail cannot be read at all (the listener refuses it permanently).
    """
    try:
        message = message_from_bytes(raw, policy=policy.default)
        bounce = _read_bounce(message, raw, envelope_sender)
        if bounce is not None:
            return bounce
        sender = _from_address(message) or _null_to_empty(envelope_sender)
        body = _text_of(message)
        return [InboundMessage("email", sender, to, body) for to in recipients]
    except Exception:  # the email package has corners that raise on hostile input
        return None


def _read_bounce(message: Message, raw: bytes, envelope_sender: str) -> Bounce | None:
    if _is_dsn(message):
        return _read_dsn(message, raw)
    if _looks_like_bounce(message, envelope_sender):
        return _read_plain_bounce(message, raw)
    return None


def _is_dsn(message: Message) -> bool:
    report_type = message.get_param("report-type")
    if message.get_content_type() != "multipart/report" or report_type is None:
        return False
    return str(collapse_rfc2231_value(report_type)).lower() == "delivery-status"


def _read_dsn(message: Message, raw: bytes) -> Bounce:
    status, code = _dsn_outcome(_status_fields(message))
    return Bounce(_original_message_id(message, raw), status, code)


def _status_fields(message: Message) -> list[dict[str, str]]:
    """The field groups of the message/delivery-status part (per message, per recipient)."""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            return [{k.lower(): str(v).strip() for k, v in block.items()}
                    for block in payload if isinstance(block, Message)]
        return [_fields_of_text(str(payload))]
    return []


def _fields_of_text(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        if colon:
            fields.setdefault(name.strip().lower(), value.strip())
    return fields


def _dsn_outcome(groups: list[dict[str, str]]) -> tuple[FinalReport | None, str | None]:
    """The worst recipient outcome: failed, then delayed, then delivered; else nothing."""
    outcomes = [outcome for group in groups if (outcome := _group_outcome(group))]
    for wanted in ("undelivered", None, "delivered"):
        for status, code in outcomes:
            if status == wanted:
                return status, code
    return None, None  # a DSN that states no outcome is not applied


def _group_outcome(group: dict[str, str]) -> tuple[FinalReport | None, str | None] | None:
    """What one recipient's fields say; None when they say nothing (the per-message
    group, ``relayed``, ``expanded``)."""
    action = group.get("action", "").lower()
    found = _STATUS.search(group.get("status", ""))
    code = f"smtp_dsn:{found.group(0)}" if found else BOUNCE_NO_STATUS
    status_class = found.group(1) if found else ""
    if action == "failed" or (not action and status_class == "5"):
        return "undelivered", code
    if action == "delayed" or (not action and status_class == "4"):
        return None, code
    if action == "delivered" or (not action and status_class == "2"):
        return "delivered", None
    return None


def _looks_like_bounce(message: Message, envelope_sender: str) -> bool:
    from_local = _from_address(message).rpartition("@")[0].lower()
    if from_local in _DAEMONS:
        return True
    subject = str(message.get("Subject", ""))
    return _null_to_empty(envelope_sender) == "" and _BOUNCE_SUBJECT.search(subject) is not None


def _read_plain_bounce(message: Message, raw: bytes) -> Bounce:
    original = _original_message_id(message, raw)
    if "delay" in str(message.get("Subject", "")).lower():
        return Bounce(original, None, None)
    text = _text_of(message)
    failed, delayed = _first_status(text, "5"), _first_status(text, "4")
    if failed:
        return Bounce(original, "undelivered", f"smtp_dsn:{failed}")
    if delayed:
        return Bounce(original, None, f"smtp_dsn:{delayed}")
    return Bounce(original, "undelivered", BOUNCE_NO_STATUS)


def _first_status(text: str, status_class: str) -> str | None:
    """The first enhanced status code (RFC 3463) of that class in ``text``."""
    return next((found.group(0) for found in _STATUS.finditer(text)
                 if found.group(1) == status_class), None)


def _original_message_id(message: Message, raw: bytes) -> str | None:
    """The Message-ID of the mail a bounce quotes (never the bounce's own)."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                found = _ANGLE_ID.search(str(inner[0].get("Message-ID", "")))
                if found:
                    return found.group(1)
        elif kind == "text/rfc822-headers":
            found = _QUOTED_MESSAGE_ID.search(_decoded_text(part))
            if found:
                return found.group(1)
    quoted = _QUOTED_MESSAGE_ID.search(_after_headers(raw).decode("utf-8", "replace"))
    return quoted.group(1) if quoted else None


def _after_headers(raw: bytes) -> bytes:
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return raw[min(ends):] if ends else b""


# --- addresses and text ---------------------------------------------------------------


def _from_address(message: Message) -> str:
    header = message.get("From")
    addresses = getattr(header, "addresses", None)
    address = str(addresses[0].addr_spec) if addresses else parseaddr(str(header or ""))[1]
    return _undo_8bit_escapes(address)


def _undo_8bit_escapes(text: str) -> str:
    """Header text as UTF-8: the parser keeps raw 8-bit bytes (SMTPUTF8 mail) as surrogates."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _null_to_empty(envelope_sender: str) -> str:
    return "" if envelope_sender.strip() in ("", "<>") else envelope_sender


def _text_of(message: Message) -> str:
    """The text of a mail: its text/plain part, else its HTML without the tags."""
    body = message.get_body(("plain", "html")) if isinstance(message, EmailMessage) else None
    if body is None:
        text = _decoded_text(message) if message.get_content_maintype() == "text" else ""
    else:
        text = _decoded_text(body)
        text = html_to_text(text) if body.get_content_subtype() == "html" else text
    return text.replace("\r\n", "\n")  # mail comes with CRLF line ends; we store LF


def _decoded_text(part: Message) -> str:
    payload = part.get_payload(decode=True)  # undoes base64 and quoted-printable
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "us-ascii"
    if charset in ("us-ascii", "ascii"):
        charset = "utf-8"  # a superset: 8-bit text sent undeclared is UTF-8 nowadays
    try:
        return payload.decode(charset, "replace")
    except LookupError:  # an unknown charset
        return payload.decode("utf-8", "replace")


class _TextCollector(HTMLParser):
    _HIDDEN = frozenset({"script", "style", "head", "title"})
    _BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden_depth += 1
        elif tag in self._BREAKS:
            self.pieces.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN and self._hidden_depth:
            self._hidden_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.pieces.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML body: tags, scripts and styles dropped, blank runs folded."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    lines = (" ".join(line.split()) for line in "".join(collector.pieces).splitlines())
    return "\n".join(line for line in lines if line)
