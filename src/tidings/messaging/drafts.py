"""Validate a send request into a draft: numbers, sender, channel, segments, timing.

Pure: no database, so the batch endpoint can validate 10,000 recipients
before it opens a transaction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tidings.connectors.encoding import segment
from tidings.messaging.addresses import (
    AddressError,
    normalize_e164,
    normalize_email,
    normalize_sender,
)
from tidings.messaging.schemas import Channel
from tidings.web.errors import InvalidRequest

SUPPORTED_CHANNELS = frozenset(Channel)
UNSEGMENTED = "UTF-8"  # the encoding of channels without SMS segments
MAX_SCHEDULE_AHEAD = timedelta(days=35)
CLOCK_SKEW = timedelta(seconds=60)
_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")


@dataclass(frozen=True)
class Draft:
    to: str
    sender: str
    body: str
    channel: str
    encoding: str
    num_segments: int
    status_callback: str | None
    send_at: datetime | None
    expires_at: datetime | None
    smpp_receipt_to: str | None = None  # submitted over SMPP, wanting a receipt there
    content_json: str | None = None  # channel content beyond the body (email, WhatsApp)
    fallback_channels: tuple[str, ...] = ()  # to try in turn if this channel fails
    fallback_after: int | None = None  # seconds "sent" without "delivered" before the next


@dataclass(frozen=True)
class SendOptions:
    """What every recipient of one request shares."""

    sender: str
    channel: str
    status_callback: str | None
    send_at: datetime | None
    validity_period: int | None


def check_options(*, sender: str, channel: str, status_callback: str | None,
                  send_at: datetime | None, validity_period: int | None,
                  now: datetime) -> SendOptions:
    if channel not in SUPPORTED_CHANNELS:
        raise InvalidRequest(f"Channel {channel!r} is not available; use one of "
                             f"{sorted(SUPPORTED_CHANNELS)}.", code="channel_unavailable")
    if send_at is not None:
        if send_at < now - CLOCK_SKEW:
            raise InvalidRequest("send_at is in the past.", code="send_at_in_past")
        if send_at > now + MAX_SCHEDULE_AHEAD:
            raise InvalidRequest("send_at is more than 35 days ahead.", code="send_at_too_far")
    # UTC, so the create response shows send_at as every later read does.
    due = send_at.astimezone(UTC) if send_at is not None and send_at > now else None
    normalize = normalize_email if channel == "email" else normalize_sender
    return SendOptions(_address(normalize, sender), channel, status_callback, due,
                       validity_period)


def make_draft(options: SendOptions, *, to: str, body: str, now: datetime,
               subject: str | None = None, html: str | None = None,
               whatsapp: Mapping[str, Any] | None = None,
               fallback: tuple[tuple[str, ...], int | None] = ((), None)) -> Draft:
    """``whatsapp``: ``{"template": {...}}`` or ``{"media": {...}}`` as the API took it;
    ``fallback``: the channels to try after this one, and after how many seconds."""
    draft = _draft(options, to=to, body=body, now=now, subject=subject, html=html,
                   whatsapp=whatsapp)
    channels, after = fallback
    if not channels:
        return draft
    # The SMS form decides encoding and segments: that is what a fallback would send.
    segmentation = segment(body)
    return replace(draft, fallback_channels=channels, fallback_after=after,
                   encoding=segmentation.encoding, num_segments=segmentation.num_segments)


def _draft(options: SendOptions, *, to: str, body: str, now: datetime, subject: str | None,
           html: str | None, whatsapp: Mapping[str, Any] | None) -> Draft:
    start = options.send_at or now
    expires_at = (start + timedelta(seconds=options.validity_period)
                  if options.validity_period else None)
    if options.channel == "email":
        content = json.dumps({"subject": subject, "html": html})
        return Draft(_address(normalize_email, to), options.sender, body, options.channel,
                     UNSEGMENTED, 1, options.status_callback, options.send_at, expires_at,
                     content_json=content)
    if options.channel == "whatsapp":
        return Draft(_address(normalize_e164, to), options.sender, body, options.channel,
                     UNSEGMENTED, 1, options.status_callback, options.send_at, expires_at,
                     content_json=json.dumps(whatsapp) if whatsapp else None)
    number = _address(normalize_e164, to)
    segmentation = segment(body)
    return Draft(number, options.sender, body, options.channel, segmentation.encoding,
                 segmentation.num_segments, options.status_callback, options.send_at,
                 expires_at)


def render_template(template: str, variables: Mapping[str, str]) -> str:
    """Replace ``{name}`` with the recipient's value; a missing one is an error."""
    def _sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise InvalidRequest(f"The template uses {{{name}}} but this recipient has no "
                                 f"variable {name!r}.", code="template_variable_missing")
        return variables[name]
    return _VARIABLE.sub(_sub, template)


def _address(normalize: Callable[[str], str], raw: str) -> str:
    try:
        return normalize(raw)
    except AddressError as exc:
        raise InvalidRequest(str(exc), code=exc.code) from None
