"""Request and response bodies of numbers, claims and the operator's assignment."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tidings.messaging.schemas import WebhookUrl
from tidings.numbers.claims import CODE_PATTERN

NumberField = Field(min_length=1, max_length=254,
                    description="A number in E.164, or an email address for inbound mail.")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimNumber(_Strict):
    number: str = NumberField


class VerifyClaim(_Strict):
    code: str = Field(pattern=CODE_PATTERN, description="The code sent to the number.")


class UpdateNumber(_Strict):
    # The account's webhook_url rules, so a number's URL may go only where the account's
    # may (where it may point is checked by the endpoint, as for the account).
    webhook_url: WebhookUrl | None = None


class AssignNumber(_Strict):
    account_id: str = Field(min_length=1, max_length=40)
    number: str = NumberField


class ClaimOut(BaseModel):
    id: str
    number: str
    status: str = Field(description="pending: verify it with the code sent to the number.")
    expires_at: datetime


class NumberOut(BaseModel):
    id: str
    number: str
    account_id: str
    webhook_url: str | None = Field(description="Inbound webhooks of this number; null: "
                                                "the account's webhook URL.")
    created_at: datetime
