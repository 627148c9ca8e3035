"""What the operator sends and sees for connectors and routes (API and CLI alike)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

CONNECTOR_NAME = r"^[a-z0-9][a-z0-9_-]{0,59}$"
SECRET_FIELDS = frozenset({"password", "access_token", "app_secret", "verify_token"})
HOST = r"^[A-Za-z0-9.:-]+$"
DOMAIN = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"


class SmppConnectorIn(BaseModel):
    """An SMPP 3.4 client connection (ESME) to a carrier's SMSC."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["smpp"] = "smpp"
    subprocessor_id: str | None = Field(
        default=None, min_length=1, max_length=40, pattern=r"^sub_[0-9a-z]+$",
        description="The company behind the carrier, in the sub-processor register: the "
                    "connector carries an account's messages only once it is in effect "
                    "for that account.")
    name: str = Field(pattern=CONNECTOR_NAME)
    host: str = Field(min_length=1, max_length=253, pattern=HOST)
    port: int = Field(default=2775, ge=1, le=65535)
    system_id: str = Field(min_length=1, max_length=15, pattern=r"^[\x21-\x7e]+$")
    password: str = Field(default="", max_length=8, pattern=r"^[\x20-\x7e]*$")
    system_type: str = Field(default="", max_length=12, pattern=r"^[\x20-\x7e]*$")
    binds: int = Field(default=1, ge=1, le=16, description="Transceiver binds to open.")
    window: int = Field(default=10, ge=1, le=1000,
                        description="Submits in flight per bind before waiting for answers.")
    tps: float | None = Field(default=None, gt=0, le=100_000,
                              description="Submits per second for the whole connector.")
    long_messages: Literal["udh", "sar", "payload"] = "udh"
    gsm7_coding: Literal["gsm7", "latin1"] = Field(
        default="gsm7", description="How GSM-7 text goes: data_coding 0, or 3 (Latin-1) for "
                                    "SMSCs that want it; text Latin-1 lacks goes as UCS-2.")
    registered_delivery: bool = True
    enquire_link_seconds: float = Field(default=30.0, ge=1, le=600)
    response_timeout_seconds: float = Field(
        default=60.0, ge=0.5, le=600,
        description="How long to wait for an answer (as Kannel's wait-ack): a loaded "
                    "process reads late, and a time-out means a retry.")
    channels: list[Literal["sms"]] = Field(default=["sms"], min_length=1)


class SmtpConnectorIn(BaseModel):
    """An SMTP relay for email, and optionally our listener for bounces (and replies)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["smtp"] = "smtp"
    subprocessor_id: str | None = Field(
        default=None, min_length=1, max_length=40, pattern=r"^sub_[0-9a-z]+$",
        description="The company behind the carrier, in the sub-processor register: the "
                    "connector carries an account's messages only once it is in effect "
                    "for that account.")
    name: str = Field(pattern=CONNECTOR_NAME)
    host: str = Field(min_length=1, max_length=253, pattern=HOST)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = Field(default=None, min_length=1, max_length=200,
                                 pattern=r"^[\x21-\x7e]+$")
    password: str = Field(default="", max_length=200, pattern=r"^[^\r\n\x00]*$")
    mail_domain: str = Field(max_length=253, pattern=DOMAIN,
                             description="Right side of our Message-IDs; our EHLO name.")
    bounce_domain: str | None = Field(default=None, max_length=253, pattern=DOMAIN,
                                      description="Envelope sender domain for bounces "
                                                  "(its MX must reach the listener).")
    concurrency: int = Field(default=4, ge=1, le=64)
    verify_tls: bool = True
    listen_host: str = Field(default="127.0.0.1", max_length=253, pattern=HOST)
    listen_port: int | None = Field(default=None, ge=0, le=65535,
                                    description="Run our SMTP listener for bounces here.")
    channels: list[Literal["email"]] = Field(default=["email"], min_length=1)


class WhatsAppConnectorIn(BaseModel):
    """A WhatsApp Business number on the Cloud API."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["whatsapp"] = "whatsapp"
    subprocessor_id: str | None = Field(
        default=None, min_length=1, max_length=40, pattern=r"^sub_[0-9a-z]+$",
        description="The company behind the carrier, in the sub-processor register: the "
                    "connector carries an account's messages only once it is in effect "
                    "for that account.")
    name: str = Field(pattern=CONNECTOR_NAME)
    phone_number_id: str = Field(min_length=1, max_length=32, pattern=r"^[0-9]+$")
    access_token: str = Field(min_length=1, max_length=1024, pattern=r"^[\x21-\x7e]+$")
    app_secret: str = Field(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$",
                            description="Checks X-Hub-Signature-256 on our webhooks.")
    verify_token: str = Field(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$",
                              description="Answers the webhook verification handshake.")
    base_url: str = Field(default="https://graph.facebook.com", max_length=2048,
                          pattern=r"^https?://[^\s\x00-\x1f\x7f]+$")
    api_version: str = Field(default="v21.0", pattern=r"^v[0-9]{1,3}\.[0-9]{1,3}$")
    concurrency: int = Field(default=16, ge=1, le=256)
    channels: list[Literal["whatsapp"]] = Field(default=["whatsapp"], min_length=1)
    display_phone_number: str | None = Field(
        default=None, max_length=32, pattern=r"^\+?[0-9][0-9 ().-]*$",
        description="The number as Meta shows it: it may be given to an account even if "
                    "no numbering plan knows it (Meta's +1 555 test numbers).")

    @field_validator("display_phone_number")
    @classmethod
    def _digits(cls, value: str | None) -> str | None:
        """Stored as ``+<digits>``, the form the Cloud API's webhooks name it in."""
        if value is None:
            return None
        digits = "".join(c for c in value if c.isdigit())
        if not 2 <= len(digits) <= 15 or digits[0] == "0":
            raise ValueError("a phone number has 2 to 15 digits and no leading 0")
        return "+" + digits


AnyConnectorIn = SmppConnectorIn | SmtpConnectorIn | WhatsAppConnectorIn
ConnectorIn = Annotated[AnyConnectorIn, Field(discriminator="kind")]


def split_secrets(body: AnyConnectorIn) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings kept readable, secrets to encrypt)."""
    data = body.model_dump(exclude={"kind", "name", "channels", "subprocessor_id"})
    secrets = {k: data.pop(k) for k in SECRET_FIELDS if k in data}
    return data, secrets


class ConnectorOut(BaseModel):
    id: str
    name: str
    kind: str
    channels: list[str]
    settings: dict[str, Any]
    secrets: list[str] = Field(description="Names of the secrets set; never their values.")
    enabled: bool
    subprocessor_id: str | None = Field(description="Its company in the sub-processor "
                                                    "register; null: the operator's own.")
    created_at: datetime
    updated_at: datetime


class ConnectorSubprocessorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subprocessor_id: str | None = Field(
        min_length=1, max_length=40, pattern=r"^sub_[0-9a-z]+$",
        description="An entry of the sub-processor register; null: the operator's own.")


class ConnectorErrorOut(BaseModel):
    """A problem the carrier reported about the connector (not about one message)."""

    code: int
    title: str
    occurred_at: datetime


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connector: str = Field(pattern=CONNECTOR_NAME)
    weight: int = Field(default=1, ge=0, le=1_000_000)


class RouteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Literal["sms", "email", "whatsapp"]
    connectors: list[TargetIn] = Field(min_length=1, max_length=20)
    priority: int = Field(default=100, ge=0, le=1_000_000)
    prefix: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{0,14}$",
                               description="Destination prefix, e.g. +44 or +1202.")
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$",
                                description="Destination country, ISO 3166-1 alpha-2.")
    sender: str | None = Field(default=None, min_length=1, max_length=32)
    account_id: str | None = Field(default=None, pattern=r"^acc_[0-9a-z]{26}$")

    @field_validator("connectors")
    @classmethod
    def _distinct(cls, targets: list[TargetIn]) -> list[TargetIn]:
        names = [t.connector for t in targets]
        if len(set(names)) != len(names):
            raise ValueError("each connector may appear once in a route")
        return targets


class RouteOut(BaseModel):
    id: str
    channel: str
    connectors: list[TargetIn]
    priority: int
    prefix: str | None
    country: str | None
    sender: str | None
    account_id: str | None
    created_at: datetime



class RouteSaved(RouteOut):
    warning: str | None = Field(
        default=None, description="What the channel's routes now leave without a "
        "connector (rejected with no_route), if anything.")
