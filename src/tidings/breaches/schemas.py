"""Request and response bodies of the breach register (``/v1/operator/breaches``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StrictStr

NatureName = Literal["confidentiality", "integrity", "availability"]
StatusName = Literal["open", "notified", "closed"]
# A number, or a text: a number, a range ("100-500") or "unknown".
Approx = Annotated[StrictInt, Field(ge=0, le=10**12)] | Annotated[StrictStr,
                                                                  Field(max_length=40)]
Label = Annotated[str, Field(min_length=1, max_length=100)]
Category = Annotated[str, Field(min_length=1, max_length=60)]
LongText = Annotated[str, Field(min_length=1, max_length=2000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BreachScopeIn(_Strict):
    """What the breach reached: the impact is estimated from it, the notices follow it."""

    tenants: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=1000,
        description="Account ids; each covers the accounts below it.")
    window_start: AwareDatetime | None = Field(default=None,
                                               description="Included.")
    window_end: AwareDatetime | None = Field(default=None, description="Not included.")
    categories: list[Category] = Field(
        default_factory=list, max_length=20,
        description="Data categories reached: fideslang keys (user.contact.phone_number, "
                    "user.contact.email, user.content.private, …).")


class BreachVersionIn(_Strict):
    """What is known of the breach. On an update, the fields given replace the current
    version's (null or an empty list clears one), the others are kept; ``scope``
    replaces the whole scope."""

    nature: NatureName | None = None
    nature_description: LongText | None = Field(
        default=None, description="What happened, without quoting anyone's data.")
    categories_of_subjects: list[Label] | None = Field(
        default=None, max_length=20,
        description="Who the data is about: message recipients, senders of inbound "
                    "messages, clients' users, …")
    approx_subjects: Approx | None = Field(
        default=None, description="A number, a range (\"100-500\") or \"unknown\".")
    approx_subjects_reason: Annotated[str, Field(min_length=1, max_length=500)] | None = \
        Field(default=None, description="Why the number of people is unknown.")
    categories_of_records: list[Category] | None = Field(
        default=None, max_length=20, description="Data categories: fideslang keys.")
    approx_records: Approx | None = Field(default=None,
                                          description="A number or a range (\"100-500\").")
    likely_consequences: LongText | None = None
    measures_taken: LongText | None = Field(
        default=None, description="Measures taken or proposed, to address the breach and "
                                  "mitigate its effects.")
    contact: Annotated[str, Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="The operator's data protection contact point.")
    scope: BreachScopeIn | None = None


class CreateBreach(BreachVersionIn):
    detected_at: AwareDatetime = Field(description="When the breach was first seen.")
    aware_at: AwareDatetime = Field(
        description="When the operator became aware that personal data was breached: "
                    "the 48 hours run from here. Not before detected_at.")


class CloseBreach(_Strict):
    reason: Annotated[str, Field(min_length=1, max_length=500)] = Field(
        description="Why the breach needs nothing more.")


class BreachScopeOut(BaseModel):
    tenants: list[str]
    window_start: datetime | None
    window_end: datetime | None
    categories: list[str]


class BreachVersionOut(BaseModel):
    version: int
    nature: NatureName | None
    nature_description: str | None
    categories_of_subjects: list[str]
    approx_subjects: str | None
    approx_subjects_reason: str | None
    categories_of_records: list[str]
    approx_records: str | None
    likely_consequences: str | None
    measures_taken: str | None
    contact: str | None
    scope: BreachScopeOut
    created_by: str
    created_at: datetime


class BreachNoticeOut(BaseModel):
    id: str
    version: int
    tenant_id: str = Field(description="The client told: the controller.")
    accounts: list[str] = Field(description="Its accounts the notice covered.")
    mail_id: str | None = Field(description="Proof of sending: the platform mail's id "
                                            "(the first owner's); null if undeliverable.")
    mail_ids: list[str] = Field(description="One mail per active owner.")
    undeliverable: str | None = Field(description="Why no mail went, if none did.")
    subjects: int
    records: int
    queued_at: datetime


class BreachOut(BaseModel):
    id: str
    status: StatusName
    detected_at: datetime
    aware_at: datetime
    due_at: datetime = Field(description="aware_at + 48 hours.")
    due_in: int | None = Field(description="Seconds left (negative once past); null once "
                                           "notified or closed.")
    overdue: bool = Field(description="Not notified at or past due_at.")
    escalated_at: datetime | None
    overdue_at: datetime | None = Field(description="When the staff were paged.")
    notified_at: datetime | None
    notified_version: int | None
    closed_at: datetime | None
    closed_by: str | None
    close_reason: str | None
    created_at: datetime
    created_by: str
    current_version: int
    missing: list[str] = Field(description="What the current version lacks before it "
                                           "can be notified.")
    current: BreachVersionOut


class BreachDetail(BreachOut):
    versions: list[BreachVersionOut] = Field(description="Every version, the first first.")
    notices: list[BreachNoticeOut]


class BreachSourceCountOut(BaseModel):
    subjects: int
    records: int


class BreachAccountImpactOut(BaseModel):
    tenant_id: str
    controller_id: str = Field(description="The client at the top of its tree.")
    subjects: int
    records: int
    sources: dict[str, BreachSourceCountOut]


class BreachImpactOut(BaseModel):
    breach_id: str
    version: int
    window_start: datetime
    window_end: datetime
    categories: list[str]
    subjects: int
    records: int
    accounts: list[BreachAccountImpactOut]
