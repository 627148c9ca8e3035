"""Request and response bodies of policy versions: the operator's
(``/v1/operator/policies``) and a client's (``/v1/policies``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

KindName = Literal["privacy_policy", "dpa", "terms"]
StateName = Literal["pending", "objected", "accepted", "deemed_accepted"]
StatusName = Literal["upcoming", "in_force", "superseded"]
OutcomeName = Literal["withdrawn", "terminating", "upheld"]
TITLE_MAX_CHARS = 200
SUMMARY_MAX_CHARS = 4000
TEXT_MAX_CHARS = 200_000
REASON_MAX_CHARS = 2000
NOTE_MAX_CHARS = 2000
# A label that reads well in a link: /legal/dpa/2027-01.
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"
VersionLabel = Annotated[str, Field(min_length=1, max_length=40, pattern=VERSION_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PublishPolicy(_Strict):
    kind: KindName
    version: VersionLabel = Field(description="The version's label, unique for its kind "
                                              "(\"2027-01\"): letters, digits, . _ -")
    title: Annotated[str, Field(min_length=1, max_length=TITLE_MAX_CHARS)] = Field(
        description="One line: \"Privacy Policy\".")
    summary: Annotated[str, Field(min_length=1, max_length=SUMMARY_MAX_CHARS)] = Field(
        description="What changed, in plain text: the notice's body.")
    text: Annotated[str, Field(min_length=1, max_length=TEXT_MAX_CHARS)] = Field(
        description="The whole new version (Markdown or plain text).")
    effective_at: AwareDatetime | None = Field(
        default=None,
        description="When it takes effect: no sooner than a month and thirty days after "
                    "publication (notice_too_short), later than the kind's earlier "
                    "versions; by default the soonest allowed.")


class ObjectToPolicy(_Strict):
    reason: Annotated[str, Field(min_length=1, max_length=REASON_MAX_CHARS)] = Field(
        description="Why the account objects, in writing.")


class ResolveObjection(_Strict):
    outcome: OutcomeName = Field(
        description="withdrawn: the client withdrew it and the version applies; "
                    "terminating: the client ends its contract; upheld: the client "
                    "keeps the earlier version.")
    note: Annotated[str, Field(min_length=1, max_length=NOTE_MAX_CHARS)] | None = Field(
        default=None, description="What was agreed; the client sees it.")


class PolicyCounts(BaseModel):
    notified: int = Field(description="Accounts told: one notice each.")
    undeliverable: int = Field(description="Of those, accounts without an active owner "
                                           "to mail.")
    pending: int
    objected: int
    accepted: int = Field(description="Accepted explicitly.")
    deemed_accepted: int = Field(description="Silent past the deadline.")
    open_objections: int = Field(description="Objections without a resolution yet.")


class ResolutionOut(BaseModel):
    outcome: OutcomeName
    note: str | None
    resolved_at: datetime
    resolved_by: str


class _VersionFacts(BaseModel):
    kind: KindName
    version: str
    title: str
    summary: str
    sha256: str = Field(description="SHA-256 of the text (UTF-8), hex.")
    published_at: datetime
    objection_deadline: datetime = Field(description="One calendar month after "
                                                     "publication, included.")
    effective_at: datetime
    status: StatusName
    url: str = Field(description="The version's public page.")


class PolicyVersionOut(_VersionFacts):
    id: str
    published_by: str
    notifying: bool = Field(description="Accounts are still being told.")
    counts: PolicyCounts


class PolicyResponseOut(BaseModel):
    """One account's notice and answer, as the operator sees it."""

    account_id: str
    account_name: str
    mail_ids: list[str] = Field(description="Proof of sending: one mail per active owner.")
    undeliverable: str | None = Field(description="Why no mail went, if none did.")
    notified_at: datetime
    state: StateName
    answered_at: datetime | None
    answered_by: str | None
    objection_reason: str | None
    resolution: ResolutionOut | None


class PolicyVersionDetail(PolicyVersionOut):
    text: str
    responses: list[PolicyResponseOut]


class PolicyNoticeOut(_VersionFacts):
    """A version as a client account sees it, with where it stands."""

    id: str = Field(description="The version's id.")
    notice_id: str
    notified_at: datetime
    state: StateName
    may_object: bool = Field(description="Objections are still taken, and none is "
                                         "recorded.")
    answered_at: datetime | None
    answered_by: str | None
    objection_reason: str | None
    resolution: ResolutionOut | None


class PolicyNoticeDetail(PolicyNoticeOut):
    text: str
