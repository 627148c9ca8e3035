"""The WhatsApp Cloud API connector: each message is one HTTPS POST to Meta's Graph API.

``POST {base_url}/{api_version}/{phone_number_id}/messages`` with the access token
as a Bearer token. A message without content is a text message (its ``body``);
``WhatsAppContent`` makes it a template (name, language, body variables in
order) or a media message. Media goes **by link only**: Meta fetches
``media_url`` itself, so it must be publicly reachable over HTTP(S); nothing is
uploaded. For templates and media ``OutboundMessage.body`` is not sent, nor is
``OutboundMessage.sender``: the sending number is the connector's
``phone_number_id``.

How the Cloud API's answers become ``SubmitResult``s:

==============================================  ======================================
2xx with ``messages[0].id``                     ``accepted``, carrier id = the wamid
2xx without a wamid we can read                 ``retry`` ``whatsapp_bad_response``
429, 5xx, or error code 2, 4, 80007, 130429,    ``retry`` ``whatsapp:<code>`` (or
131000, 131016, 131056, 133004 (throttling,     ``whatsapp_http_<status>`` without a
service trouble)                                code), honouring ``Retry-After``
401, or error code 0, 3, 10, 190, 200-299,      ``retry`` ``UNAVAILABLE``: this account
368, 131031 (token, permissions, account        cannot send now, the router fails
blocked)                                        over; logged as ``whatsapp_account_error``
any other error code (131026 undeliverable,     ``rejected`` ``whatsapp:<code>``
131047 outside the 24 h window, 132000-series
template errors, 100 invalid parameter...)
any other status without a readable code        ``rejected`` ``whatsapp_http_<status>``
connection refused, DNS failure, connect        ``retry`` ``UNAVAILABLE`` (nothing was
time-out, connector not started                 sent: fail over at once)
time-out after connecting                       ``retry`` ``whatsapp_timeout``
connection lost mid-request                     ``retry`` ``whatsapp_connection_lost``
content we cannot send                          ``rejected`` ``whatsapp_invalid_number``,
                                                ``_invalid_template``, ``_invalid_media``,
                                                ``_unsupported_content``, ``_unencodable``
==============================================  ======================================

A time-out or lost connection after the request went out may hide a message
Meta took: the dispatcher retries, as with SMPP, because the Cloud API has no
idempotency key. Within this process, submits are idempotent by message id:
the first final answer (accepted or rejected) is repeated, and a submit of a
message already in flight waits for that request instead of making another.

Delivery statuses and customer messages arrive by webhook (``webhooks.py``),
handled by the HTTP routes, not by this object: ``start`` keeps no sinks and
``recorded`` has nothing to release. Logs carry message ids, HTTP statuses and
error codes, never numbers, bodies or the token.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson

from tidings.connectors.answers import SubmitOnce
from tidings.connectors.base import (
    UNAVAILABLE,
    InboundSink,
    OutboundMessage,
    ReportSink,
    SubmitResult,
    WhatsAppContent,
    refuse_inbound,
)
from tidings.core.logs import get_logger

log = get_logger("tidings.whatsapp")

GRAPH_BASE_URL = "https://graph.facebook.com"
MAX_RESPONSE_BYTES = 64 * 1024  # a Cloud API answer is well under 1 KiB
MAX_RETRY_AFTER_SECONDS = 3600.0
TRANSIENT_CODES = frozenset({2, 4, 80007, 130429, 131000, 131016, 131056, 133004})
ACCOUNT_CODES = frozenset({0, 3, 10, 190, 368, 131031, *range(200, 300)})

_E164 = re.compile(r"\+([1-9][0-9]{1,14})")  # [0-9], not \d: \d matches non-ASCII digits
_NUMERIC_ID = re.compile(r"[0-9]+")
_API_VERSION = re.compile(r"v[0-9]+\.[0-9]+")
_CAPTIONED = frozenset({"image", "document", "video"})  # audio takes no caption
_MEDIA_TYPES = frozenset({"image", "document", "audio", "video"})


@dataclass(frozen=True, kw_only=True)
class WhatsAppSettings:
    """One WhatsApp business phone number on the Cloud API.

    ``app_secret`` and ``verify_token`` are for the webhook routes
    (``webhooks.signature_valid``, ``webhooks.verify_handshake``).
    """

    phone_number_id: str
    access_token: str = field(repr=False)
    app_secret: str = field(repr=False)
    verify_token: str = field(repr=False)
    base_url: str = GRAPH_BASE_URL
    api_version: str = "v21.0"
    timeout_seconds: float = 10.0
    concurrency: int = 16
    display_phone_number: str | None = None  # what accounts may own, as ``+<digits>``

    def __post_init__(self) -> None:
        # The id and version go into the URL path: only their documented forms.
        if not _NUMERIC_ID.fullmatch(self.phone_number_id):
            raise ValueError("phone_number_id must be the numeric id Meta shows")
        if not _API_VERSION.fullmatch(self.api_version):
            raise ValueError("api_version must look like v21.0")
        if not self.base_url.startswith(("https://", "http://")):
            raise ValueError("base_url must be an http(s) URL")
        if not self.access_token:
            raise ValueError("access_token must not be empty")
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")

    @property
    def messages_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/{self.api_version}/{self.phone_number_id}/messages"


class InvalidContent(ValueError):
    """A message the Cloud API could never take; ``error_code`` says why."""

    def __init__(self, error_code: str) -> None:
        super().__init__(error_code)
        self.error_code = error_code


class WhatsAppConnector:
    """Sends messages through one Cloud API phone number (see the module docstring)."""

    channels = frozenset({"whatsapp"})

    def __init__(self, name: str, settings: WhatsAppSettings) -> None:
        self.name, self.settings = name, settings
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._once = SubmitOnce()

    async def start(self, sink: ReportSink, inbound: InboundSink = refuse_inbound) -> None:
        """Open the HTTP session. The sinks are not kept: reports and customer
        messages come by webhook, to the HTTP routes."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
                connector=aiohttp.TCPConnector(limit=self.settings.concurrency),
                cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)

    async def stop(self) -> None:
        """Close the session; requests still in flight end as retries."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        await self._once.wait_running()

    def recorded(self, carrier_message_ids: Sequence[str]) -> None:
        """Nothing is held here: webhook routes hand reports to the sink themselves."""

    async def submit(self, messages: Sequence[OutboundMessage]) -> list[SubmitResult]:
        """Results in input order; never raises for the Cloud API's answer."""
        return list(await asyncio.gather(*(
            self._once.run(m.message_id, functools.partial(self._submit_and_log, m))
            for m in messages)))

    async def _submit_and_log(self, message: OutboundMessage) -> SubmitResult:
        result = await self._submit(message)
        if result.outcome != "accepted":
            log.warning("whatsapp_submit_not_accepted", connector=self.name,
                        message_id=message.message_id, outcome=result.outcome,
                        error_code=result.error_code)
        return result

    async def _submit(self, message: OutboundMessage) -> SubmitResult:
        try:
            body = orjson.dumps(request_body(message))
        except InvalidContent as exc:
            return SubmitResult(message.message_id, "rejected", error_code=exc.error_code)
        except orjson.JSONEncodeError:  # text that is not valid Unicode (lone surrogates)
            return SubmitResult(message.message_id, "rejected", error_code="whatsapp_unencodable")
        async with self._slots:
            session = self._session
            # Checked after the wait for a slot: stop() may have closed the session meanwhile.
            if session is None or session.closed:
                return SubmitResult(message.message_id, "retry", error_code=UNAVAILABLE)
            return await self._post(session, message.message_id, body)

    async def _post(self, session: aiohttp.ClientSession, message_id: str,
                    body: bytes) -> SubmitResult:
        headers = {"Authorization": f"Bearer {self.settings.access_token}",
                   "Content-Type": "application/json"}
        try:
            async with session.post(self.settings.messages_url, data=body, headers=headers,
                                    allow_redirects=False) as response:
                status, retry_after = response.status, response.headers.get("Retry-After")
                answer = await _read_capped(response)
        # Order matters: a connect time-out is also a TimeoutError, which is an OSError.
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
            return SubmitResult(message_id, "retry", error_code=UNAVAILABLE)
        except TimeoutError:
            return SubmitResult(message_id, "retry", error_code="whatsapp_timeout")
        except (aiohttp.ClientError, OSError):
            return SubmitResult(message_id, "retry", error_code="whatsapp_connection_lost")
        result = result_of(message_id, status, answer, retry_after)
        if result.error_code == UNAVAILABLE:
            log.error("whatsapp_account_error", connector=self.name, status=status,
                      whatsapp_code=error_code_of(answer))
        return result


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    remaining = MAX_RESPONSE_BYTES
    while remaining > 0 and (chunk := await response.content.read(remaining)):
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# --- the request ------------------------------------------------------------------------


def request_body(message: OutboundMessage) -> dict[str, Any]:
    """The Cloud API JSON for ``message``; ``InvalidContent`` if it cannot be sent.

    The pipeline may call it before accepting a send, to answer a 400 at once.
    """
    envelope: dict[str, Any] = {"messaging_product": "whatsapp",
                                "recipient_type": "individual",
                                "to": cloud_number(message.to)}
    content = message.content
    if content is None:
        return envelope | {"type": "text", "text": {"body": message.body}}
    if not isinstance(content, WhatsAppContent):
        raise InvalidContent("whatsapp_unsupported_content")
    if content.kind == "template":
        return envelope | _template(content)
    return envelope | _media(content)


def cloud_number(e164: str) -> str:
    """The Cloud API's form of a number: E.164 digits without the ``+``."""
    match = _E164.fullmatch(e164)
    if match is None:
        raise InvalidContent("whatsapp_invalid_number")
    return match.group(1)


def _template(content: WhatsAppContent) -> dict[str, Any]:
    if not content.template_name or not content.language:
        raise InvalidContent("whatsapp_invalid_template")
    template: dict[str, Any] = {"name": content.template_name,
                                "language": {"code": content.language}}
    if content.variables:
        parameters = [{"type": "text", "text": value} for value in content.variables]
        template["components"] = [{"type": "body", "parameters": parameters}]
    return {"type": "template", "template": template}


def _media(content: WhatsAppContent) -> dict[str, Any]:
    kind, url = content.media_type, content.media_url
    if kind not in _MEDIA_TYPES or not url or not url.startswith(("https://", "http://")):
        raise InvalidContent("whatsapp_invalid_media")
    media: dict[str, Any] = {"link": url}
    if content.caption:
        if kind not in _CAPTIONED:  # refused rather than sent without the client's text
            raise InvalidContent("whatsapp_invalid_media")
        media["caption"] = content.caption
    return {"type": kind, kind: media}


# --- the answer -------------------------------------------------------------------------


def result_of(message_id: str, status: int, body: bytes,
              retry_after: str | None) -> SubmitResult:
    """What one Cloud API answer means for the message (the table in the module docstring)."""
    if 200 <= status < 300:
        wamid = _wamid_of(body)
        if wamid is None:
            return SubmitResult(message_id, "retry", error_code="whatsapp_bad_response")
        return SubmitResult(message_id, "accepted", carrier_message_id=wamid)
    code = error_code_of(body)
    if status == 401 or code in ACCOUNT_CODES:
        return SubmitResult(message_id, "retry", error_code=UNAVAILABLE)
    named = f"whatsapp:{code}" if code is not None else f"whatsapp_http_{status}"
    if status == 429 or status >= 500 or code in TRANSIENT_CODES:
        return SubmitResult(message_id, "retry", error_code=named,
                            retry_after_seconds=retry_after_seconds(retry_after))
    return SubmitResult(message_id, "rejected", error_code=named)


def error_code_of(body: bytes) -> int | None:
    """``error.code`` of a Graph API error body, or None when there is none to read."""
    error = _json_object(body).get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def retry_after_seconds(header: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as seconds from ``now``,
    capped at an hour; None when absent or unreadable."""
    if header is None:
        return None
    seconds: float | None
    try:
        seconds = float(header)
    except ValueError:
        seconds = _seconds_until(header, now or datetime.now(UTC))
    if seconds is None or seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _seconds_until(http_date: str, now: datetime) -> float | None:
    try:
        moment = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, OverflowError):
        return None
    if moment.tzinfo is None:  # RFC 9110 dates are GMT
        moment = moment.replace(tzinfo=UTC)
    return (moment - now).total_seconds()


def _wamid_of(body: bytes) -> str | None:
    messages = _json_object(body).get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    wamid = first.get("id") if isinstance(first, dict) else None
    return wamid if isinstance(wamid, str) and wamid else None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
