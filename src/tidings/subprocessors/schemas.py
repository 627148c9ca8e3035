"""Request and response bodies of the sub-processor register (``/v1/operator/
subprocessors``, ``/v1/subprocessors``, the public ``/subprocessors.json``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

TransferName = Literal["none", "adequacy", "sccs", "bcrs", "derogation"]
StatusName = Literal["proposed", "notified", "objected", "active", "retired"]
ResolutionName = Literal["upheld", "withdrawn", "terminating"]
Country = Annotated[str, Field(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")]
Category = Annotated[str, Field(min_length=1, max_length=60)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubprocessorFields(_Strict):
    """What the register says of a sub-processor (SUB-1). On a change, the fields given
    replace the entry's; a change is possible only while the entry is proposed."""

    legal_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    countries: list[Country] | None = Field(
        default=None, min_length=1, max_length=30,
        description="Where it processes the data: ISO 3166-1 alpha-2 codes.")
    purpose: Annotated[str, Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="What it does for the platform (carries SMS to "
                                  "networks in …, relays e-mail, …).")
    data_categories: list[Category] | None = Field(
        default=None, min_length=1, max_length=20,
        description="The personal data it processes: fideslang keys "
                    "(user.contact.phone_number, user.content.private, …).")
    transfer_mechanism: TransferName | None = Field(
        default=None, description="The safeguard of a transfer outside the platform's "
                                  "jurisdiction: none, adequacy, sccs, bcrs, derogation.")
    security_summary: Annotated[str, Field(min_length=1, max_length=2000)] | None = Field(
        default=None, description="Its technical and organisational measures, in short.")


class CreateSubprocessor(SubprocessorFields):
    legal_name: Annotated[str, Field(min_length=1, max_length=200)]
    countries: list[Country] = Field(min_length=1, max_length=30)
    purpose: Annotated[str, Field(min_length=1, max_length=500)]
    data_categories: list[Category] = Field(min_length=1, max_length=20)
    transfer_mechanism: TransferName
    security_summary: Annotated[str, Field(min_length=1, max_length=2000)]


class NotifySubprocessor(_Strict):
    effective_at: AwareDatetime = Field(
        description="When it may be used: at least thirty days after now (SUB-2).")


class ObjectionIn(_Strict):
    reason: Annotated[str, Field(min_length=1, max_length=2000)] = Field(
        description="The client's reasonable grounds (the DPA: an objection in writing).")


class ResolutionIn(_Strict):
    outcome: ResolutionName = Field(
        description="upheld: the client stays off it; withdrawn: the client withdrew "
                    "the objection; terminating: the client ends the service instead.")
    note: Annotated[str, Field(min_length=1, max_length=1000)] = Field(
        description="What was agreed, for the record.")


class SubprocessorOut(BaseModel):
    """An entry as everyone may see it (the public page shows the same)."""

    id: str
    legal_name: str
    countries: list[str]
    purpose: str
    data_categories: list[str]
    transfer_mechanism: TransferName
    security_summary: str
    status: StatusName = Field(description="At the instant of the answer.")
    notified_at: datetime | None
    effective_at: datetime | None
    retired_at: datetime | None


class YourNotice(BaseModel):
    """The notice to the caller's client account and its objection, if any."""

    notified_at: datetime
    effective_at: datetime = Field(description="When it applies to this account.")
    objection_until: datetime = Field(description="Objections are heard until then.")
    objected_at: datetime | None
    objection_reason: str | None
    resolution: ResolutionName | None
    resolved_at: datetime | None
    resolution_note: str | None
    applies: bool = Field(description="Whether it may process this account's data now.")


class ClientSubprocessorOut(SubprocessorOut):
    notice: YourNotice | None = Field(
        description="Null for an account below a client (the client's notice governs it) "
                    "and for a client that joined after the notice.")


class SubprocessorNoticeOut(BaseModel):
    """One client's notice, as the operator sees it."""

    account_id: str
    account_name: str
    notified_at: datetime
    effective_at: datetime
    mail_ids: list[str] = Field(description="The owners' mails: the proof it was sent.")
    undeliverable: str | None
    objected_at: datetime | None
    objected_by: str | None
    objection_reason: str | None
    resolution: ResolutionName | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None


class OperatorSubprocessorOut(SubprocessorOut):
    created_at: datetime
    created_by: str
    connectors: list[str] = Field(description="The connectors it carries for.")
    notices: int = Field(description="Clients told.")
    objections_open: int
    objections: int


class PublicRegister(BaseModel):
    """The register at an instant: what is in use, what is coming, what was."""

    as_of: datetime
    current: list[SubprocessorOut]
    upcoming: list[SubprocessorOut]
    former: list[SubprocessorOut]
