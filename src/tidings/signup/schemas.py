"""Request and response bodies of sign-up, verification and verified numbers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tidings.numbers.claims import CODE_PATTERN


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignUpIn(_Strict):
    company: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024,
                          description="The owner's password, by the password policy.")
    country: str = Field(min_length=2, max_length=2,
                         description="ISO 3166-1 alpha-2, such as DE.")


class SignUpOut(BaseModel):
    status: Literal["accepted"] = "accepted"
    detail: str = Field(description="What happens next; the same for every address.")


class ConfirmIn(_Strict):
    token: str = Field(min_length=1, max_length=300)


class ConfirmOut(BaseModel):
    email_confirmed: bool


class VerificationIn(_Strict):
    legal_name: str = Field(min_length=1, max_length=200)
    country: str = Field(min_length=2, max_length=2)
    registration_number: str = Field(min_length=1, max_length=100)
    contact_name: str = Field(min_length=1, max_length=200)
    contact_email: str = Field(min_length=3, max_length=254)
    contact_phone: str | None = Field(default=None, min_length=1, max_length=40)
    intended_use: str = Field(min_length=1, max_length=2000)


class VerificationDetailsOut(BaseModel):
    legal_name: str
    country: str
    registration_number: str
    contact_name: str
    contact_email: str
    contact_phone: str | None
    intended_use: str


class VerificationOut(BaseModel):
    account_id: str
    account_name: str
    account_status: str
    status: str = Field(description="awaiting_details, submitted, approved or rejected.")
    email_confirmed: bool
    details: VerificationDetailsOut | None
    submitted_at: datetime | None
    decision: str | None
    decision_note: str | None
    decided_at: datetime | None


class VerifyAccountIn(_Strict):
    outcome: Literal["trial", "active"]
    note: str | None = Field(default=None, max_length=1000)


class RejectAccountIn(_Strict):
    reason: str = Field(min_length=1, max_length=1000)


class VerifiedNumberIn(_Strict):
    number: str = Field(min_length=1, max_length=40, description="A number in E.164.")


class ConfirmNumberIn(_Strict):
    code: str = Field(pattern=CODE_PATTERN, description="The code sent to the number.")


class VerifiedNumberOut(BaseModel):
    id: str
    number: str
    status: Literal["pending", "verified"]
    expires_at: datetime | None = Field(description="When the code stops working; null "
                                                    "once verified.")
    verified_at: datetime | None
    created_at: datetime
