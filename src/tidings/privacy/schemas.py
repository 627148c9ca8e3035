"""Request and response bodies of data subject requests, legal holds and restrictions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RequestTypeName = Literal["access", "rectification", "erasure", "restriction", "portability",
                          "objection"]
StatusName = Literal["received", "in_progress", "completed", "blocked_legal_hold", "rejected"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubjectIn(_Strict):
    """The person: exactly one of a number (E.164) or an e-mail address."""

    number: str | None = Field(default=None, min_length=1, max_length=40)
    email: str | None = Field(default=None, min_length=3, max_length=254)


class CreateRequest(_Strict):
    type: RequestTypeName
    subject: SubjectIn
    note: str | None = Field(default=None, max_length=2000,
                             description="What the person asked, in their words; kept "
                                         "encrypted, emptied if they are erased.")
    rectify_to: SubjectIn | None = Field(
        default=None, description="A rectification's correct number or address.")


class ForwardRequest(CreateRequest):
    """The operator, as processor, hands a request it received to the account."""

    account_id: str = Field(min_length=1, max_length=40)


class ExtendRequest(_Strict):
    months: Literal[1, 2] = Field(description="Calendar months more; three from receipt "
                                              "at most in all.")
    reason: str = Field(min_length=1, max_length=500,
                        description="Why, as the person is told (Art. 12(3)).")


class CompleteRequest(_Strict):
    note: str = Field(min_length=1, max_length=500)


class RejectRequest(_Strict):
    reason: str = Field(min_length=1, max_length=500)


class RequestOut(BaseModel):
    id: str
    type: RequestTypeName
    status: StatusName
    subject: dict[str, str] | None = Field(
        description="{\"number\": …} or {\"email\": …}; null once the person was erased.")
    note: str | None
    source: str
    received_at: datetime
    due_at: datetime
    overdue: bool = Field(description="Open and past its due date.")
    extended_at: datetime | None
    extension_reason: str | None
    completed_at: datetime | None
    outcome: dict[str, Any] = Field(description="What was done, without personal data.")


class PlaceHold(_Strict):
    subject: SubjectIn
    basis: str = Field(min_length=1, max_length=500,
                       description="Why the data is kept: a claim, an investigation.")


class HoldOut(BaseModel):
    id: str
    basis: str
    created_at: datetime
    released_at: datetime | None


class RestrictionOut(BaseModel):
    id: str
    request_id: str | None
    created_at: datetime
    lifted_at: datetime | None


class ImportOut(BaseModel):
    messages: int


class SetRetention(_Strict):
    message_body_days: int | None = Field(
        ge=1, le=36_500, description="Days a message keeps its body and addresses; null: "
                                     "the platform's default. Within the platform's limits.")


class RetentionRunOut(BaseModel):
    id: str
    started_at: datetime
    cutoff: datetime = Field(description="Messages created before this were anonymised.")
    messages: int
    keys_destroyed: int


class RetentionOut(BaseModel):
    message_body_days: int = Field(description="The period in force for this account.")
    chosen: bool = Field(description="Whether the account chose it (else the default).")
    default_days: int
    min_days: int
    max_days: int
    runs: list[RetentionRunOut] = Field(description="The last runs, newest first.")


class PurgeOut(BaseModel):
    account_id: str
    terminated_at: datetime
    purge_due_at: datetime = Field(description="Six calendar months after termination.")
    requested_at: datetime | None = Field(description="When the client asked for it sooner.")
    purged_at: datetime | None
    certificate_id: str | None
