"""Request and response bodies of ``/v1/consents``; a CSV row is checked as a
``RecordConsent`` too, so that a row and a request are refused for the same reasons."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from tidings.consents.rules import (
    ConsentChannel,
    ConsentMechanism,
    ConsentPurpose,
    ConsentSource,
)

__all__ = ["ConsentChannel", "ConsentEventOut", "ConsentHistoryOut", "ConsentImportOut",
           "ConsentMechanism", "ConsentMechanismIn", "ConsentPurpose", "ConsentSource",
           "ConsentSourceIn", "ConsentStateOut", "RecordConsent", "RecordedConsentOut",
           "RowError"]


class ConsentMechanismIn(StrEnum):
    """What a client may record."""

    OPT_IN = "opt_in"
    OPT_OUT = "opt_out"
    SOFT_OPT_IN = "soft_opt_in"


class ConsentSourceIn(StrEnum):
    """Where a client captured it."""

    WEB_FORM = "web_form"
    KEYWORD = "keyword"
    API = "api"
    IMPORT = "import"


# Stripped, not empty, one line without control characters.
_ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
Evidence = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                            max_length=500, pattern=_ONE_LINE)]
TextVersion = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                               max_length=40, pattern=_ONE_LINE)]


class RecordConsent(BaseModel):
    """One consent event. Name the person by exactly one of ``number`` (every channel
    but e-mail) or ``email`` (the e-mail channel)."""

    model_config = ConfigDict(extra="forbid")

    number: str | None = Field(default=None, max_length=40,
                               description="The person's number, E.164.")
    email: str | None = Field(default=None, max_length=254,
                              description="The person's e-mail address.")
    channel: ConsentChannel
    purpose: ConsentPurpose
    mechanism: ConsentMechanismIn = Field(
        description="`soft_opt_in`: an existing customer's e-mail (e-Privacy Art. 13(2)), "
                    "e-mail only.")
    source: ConsentSourceIn
    evidence_ref: Evidence = Field(
        description="Where the proof is: a form submission's id, a keyword message's id, "
                    "a signed document's reference.")
    text_version: TextVersion | None = Field(
        default=None, description="The version of the consent text the person saw.")
    text_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the consent text the person saw, 64 lower-case hex digits.")
    ip: str | None = Field(
        default=None, max_length=64,
        description="The address the consent came from: only its /24 (IPv4) or /48 (IPv6) "
                    "network is kept.")
    captured_at: AwareDatetime | None = Field(
        default=None, description="When it was captured, if not now: never in the future, "
                                  "not before 2000.")

    def subject_given(self) -> dict[str, str]:
        return {name: value for name, value in (("number", self.number),
                                                ("email", self.email)) if value is not None}


class ConsentEventOut(BaseModel):
    id: str
    channel: ConsentChannel
    purpose: ConsentPurpose
    mechanism: ConsentMechanism
    source: ConsentSource
    evidence_ref: str | None = Field(description="null once the person was erased.")
    text_version: str | None
    text_sha256: str | None
    ip_prefix: str | None = Field(description="The network the consent came from, if kept.")
    captured_at: datetime
    captured_by: str
    recorded_at: datetime


class RecordedConsentOut(ConsentEventOut):
    subject: dict[str, str] = Field(description='{"number": …} or {"email": …}.')


class ConsentStateOut(BaseModel):
    channel: ConsentChannel
    purpose: ConsentPurpose
    in_force: bool = Field(description="Consent is given: the latest event is an opt-in.")
    mechanism: ConsentMechanism = Field(description="The latest event's.")
    since: datetime = Field(description="When the latest event was captured.")


class ConsentHistoryOut(BaseModel):
    subject: dict[str, str]
    events: list[ConsentEventOut] = Field(description="Oldest first, by capture.")
    state: list[ConsentStateOut] = Field(description="Per channel and purpose.")


class RowError(BaseModel):
    row: int = Field(description="The row as a spreadsheet numbers it: the header is 1.")
    column: str | None
    code: str
    detail: str


class ConsentImportOut(BaseModel):
    imported: int
    refused: int
    errors: list[RowError] = Field(description="The refused rows' reasons, the first 1,000.")
