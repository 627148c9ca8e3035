"""Request and response bodies of the messages API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from tidings.messaging.lifecycle import Status

# Bounds that keep one request cheap to validate; the message limits live in settings.
MAX_ADDRESS_CHARS = 64
MAX_EMAIL_ADDRESS_CHARS = 254
MAX_BODY_CHARS = 1_600
MAX_EMAIL_BODY_CHARS = 100_000
MAX_SUBJECT_CHARS = 998  # RFC 5322 line limit
EMAIL_ONLY = ("subject", "html")
MAX_URL_CHARS = 2_048
MAX_VALIDITY_SECONDS = 14 * 24 * 3600
# No whitespace or control characters: a NUL would also break a PostgreSQL text column.
URL_PATTERN = r"^https?://[^\s\x00-\x1f\x7f]+$"


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    WHATSAPP = "whatsapp"


class Direction(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


def _with_host(url: str) -> str:
    if not urlsplit(url).hostname:
        raise ValueError("the URL has no host")
    return url


# Where webhooks go; where it may point (no loopback, metadata, ...) is checked against
# the settings by tidings.webhooks.destinations.
WebhookUrl = Annotated[str, Field(max_length=MAX_URL_CHARS, pattern=URL_PATTERN),
                       AfterValidator(_with_host)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _SendOptions(_Strict):
    from_: str = Field(alias="from", min_length=1, max_length=MAX_EMAIL_ADDRESS_CHARS)
    channel: str = Field(default="sms", max_length=20)
    status_callback: WebhookUrl | None = None
    send_at: AwareDatetime | None = None
    # Strict: JSON true or "60" is not a number of seconds (true would have meant 1 s).
    validity_period: int | None = Field(
        default=None, ge=1, le=MAX_VALIDITY_SECONDS, strict=True,
        description="Seconds before an undelivered message expires.")


class WhatsAppTemplate(_Strict):
    name: str = Field(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")
    language: str = Field(default="en_US", min_length=2, max_length=15,
                          pattern=r"^[A-Za-z]{2,3}(_[A-Za-z0-9]{2,8})?$")
    variables: list[str] = Field(default_factory=list, max_length=50)


class WhatsAppMedia(_Strict):
    type: Literal["image", "document", "audio", "video"]
    url: str = Field(max_length=MAX_URL_CHARS, pattern=URL_PATTERN)
    caption: str | None = Field(default=None, min_length=1, max_length=1024)


class SendMessage(_SendOptions):
    to: str = Field(min_length=1, max_length=MAX_EMAIL_ADDRESS_CHARS)
    body: str = Field(min_length=1, max_length=MAX_EMAIL_BODY_CHARS,
                      description="The text: an email's text/plain part; with a WhatsApp "
                                  "template or media, the text kept for the message's "
                                  "history and for an SMS fallback.")
    subject: str | None = Field(default=None, min_length=1, max_length=MAX_SUBJECT_CHARS,
                                pattern=r"^[^\r\n\x00]+$", description="Email only.")
    html: str | None = Field(default=None, min_length=1, max_length=MAX_EMAIL_BODY_CHARS,
                             description="Email only: the text/html part.")
    template: WhatsAppTemplate | None = Field(default=None, description="WhatsApp only.")
    media: WhatsAppMedia | None = Field(default=None, description="WhatsApp only.")
    channels: list[Literal["whatsapp", "sms"]] | None = Field(
        default=None, min_length=2, max_length=2,
        description='Channel failover, e.g. ["whatsapp", "sms"]: the next is tried when the '
                    "first fails (or is not delivered within fallback_after).")
    fallback_after: int | None = Field(default=None, ge=10, le=MAX_VALIDITY_SECONDS,
                                       strict=True, description="Seconds; with channels.")

    @model_validator(mode="after")
    def _one_channel_or_a_fallback_list(self) -> SendMessage:
        if self.channels is None:
            if self.fallback_after is not None:
                raise ValueError("fallback_after needs channels")
            return self
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels must differ")
        if "channel" in self.model_fields_set and self.channel != self.channels[0]:
            raise ValueError("channel, if given, must be the first of channels")
        self.channel = self.channels[0]
        return self

    @model_validator(mode="after")
    def _fits_the_channel(self) -> SendMessage:
        rich = self.template is not None or self.media is not None
        if self.channel != "whatsapp" and rich:
            raise ValueError("template and media are for WhatsApp only")
        if self.template is not None and self.media is not None:
            raise ValueError("a message is a template or media, not both")
        if self.channel == "email":
            if self.subject is None:
                raise ValueError("an email needs a subject")
            return self
        if any(getattr(self, name) is not None for name in EMAIL_ONLY):
            raise ValueError("subject and html are for email only")
        if len(self.to) > MAX_ADDRESS_CHARS or len(self.from_) > MAX_ADDRESS_CHARS:
            raise ValueError(f"to and from are at most {MAX_ADDRESS_CHARS} characters")
        if len(self.body) > MAX_BODY_CHARS:
            raise ValueError(f"body is at most {MAX_BODY_CHARS} characters")
        return self


class BatchRecipient(_Strict):
    to: str = Field(min_length=1, max_length=MAX_ADDRESS_CHARS)
    variables: dict[str, str] = Field(default_factory=dict, max_length=50)


class SendBatch(_SendOptions):
    body: str = Field(min_length=1, max_length=MAX_BODY_CHARS,
                      description="A template: {name} is replaced by the recipient's variable.")
    recipients: list[BatchRecipient] = Field(min_length=1)

    @model_validator(mode="after")
    def _short_sender(self) -> SendBatch:
        if len(self.from_) > MAX_ADDRESS_CHARS:
            raise ValueError(f"from is at most {MAX_ADDRESS_CHARS} characters")
        return self


class MessageEventOut(BaseModel):
    seq: int
    # Not ``Status``: the history also notes steps that are no status of a message
    # (``retrying``, ``read``, ``not_delivered``).
    status: str
    applied: bool
    source: str
    error_code: str | None
    connector: str | None = Field(default=None, description="The connector of this attempt.")
    created_at: datetime


class MessageOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: str
    account_id: str
    direction: Direction
    channel: Channel
    status: Status
    to: str | None = Field(description="Null once the person it was sent to (or, for an "
                                       "inbound message, from) was erased.")
    from_: str | None = Field(alias="from", description="Null once the person was erased.")
    body: str | None = Field(description="Null when the caller may not read message "
                                         "content (messages:read_content), or once the "
                                         "person was erased.")
    subject: str | None = None
    html: str | None = None
    template: WhatsAppTemplate | None = None
    media: WhatsAppMedia | None = None
    encoding: str
    num_segments: int
    status_callback: str | None
    send_at: datetime | None
    expires_at: datetime | None
    error_code: str | None
    created_at: datetime
    updated_at: datetime
    events: list[MessageEventOut] | None = None


class MessagePage(BaseModel):
    data: list[MessageOut]
    next_cursor: str | None


class BatchError(BaseModel):
    code: str
    detail: str


class BatchResult(BaseModel):
    index: int
    status: Literal["accepted", "rejected"]
    message_id: str | None = None
    to: str | None = None
    num_segments: int | None = None
    error: BatchError | None = None


class BatchResponse(BaseModel):
    accepted: int
    rejected: int
    results: list[BatchResult]
