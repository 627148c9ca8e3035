"""Request and response bodies of accounts and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
)

from tidings.accounts.models import AccountStatus
from tidings.accounts.permissions import Permission
from tidings.accounts.rights import MAX_SENDER_IDS
from tidings.accounts.suspension import MAX_REASON_CHARS
from tidings.messaging.schemas import Channel, WebhookUrl


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountOut(BaseModel):
    id: str
    parent_id: str | None
    name: str
    status: AccountStatus
    webhook_url: str | None
    webhook_statuses: list[str] | None = Field(
        description="Statuses whose changes are POSTed; null: every change.")
    created_at: datetime
    updated_at: datetime


class AccountWithSecrets(AccountOut):
    api_key: str = Field(description="Shown once; store it now.")
    api_key_id: str
    webhook_secret: str


class UpdateAccount(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    webhook_url: WebhookUrl | None = None
    webhook_statuses: list[str] | None = Field(
        default=None, max_length=20,
        description="Statuses whose changes are POSTed (\"final\" for every final one); "
                    "null: every change.")


class CreateSubAccount(_Strict):
    name: str = Field(min_length=1, max_length=200)
    webhook_url: WebhookUrl | None = None
    webhook_statuses: list[str] | None = Field(
        default=None, max_length=20,
        description="Statuses whose changes are POSTed (\"final\" for every final one); "
                    "null: every change.")


class CreateApiKey(_Strict):
    name: str = Field(default="default", min_length=1, max_length=200)
    scopes: list[Annotated[str, Field(max_length=60)]] | None = Field(
        default=None, max_length=len(Permission),
        description="Permissions the key has, such as messages:send; never more than its "
                    "creator's own. Omitted: the creator's own permissions.")
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the key stops working; omitted: never.")
    allowed_ips: list[Annotated[str, Field(max_length=50)]] | None = Field(
        default=None, max_length=50,
        description="Addresses or CIDRs (203.0.113.0/24) the key may be used from; "
                    "omitted: any.")


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[Permission]
    expires_at: datetime | None
    allowed_ips: list[str]
    created_by: str | None = Field(description="Who made the key: user:usr_…, api_key:key_…, "
                                               "operator:….")
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class NewApiKeyOut(ApiKeyOut):
    key: str = Field(description="Shown once; store it now.")


class WebhookSecretOut(BaseModel):
    webhook_secret: str


# --- sub-account rights and suspension --------------------------------------------------

class SetRights(_Strict):
    """A sub-account's rights; a right left out or null: no restriction beyond the
    parent's. Replaces every right the sub-account had."""

    channels: list[Channel] | None = Field(
        default=None, max_length=len(Channel), description="Channels it may send on.")
    sender_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=254)]] | None = (
        Field(default=None, max_length=MAX_SENDER_IDS,
              description="Senders (`from`) it may send from: sender ids, numbers, e-mail "
                          f"addresses; at most {MAX_SENDER_IDS}."))
    monthly_message_cap: StrictInt | None = Field(
        default=None, ge=0, le=10**12,
        description="Outbound messages it may send in a calendar month (UTC).")
    requests_per_second: StrictInt | None = Field(
        default=None, ge=1, le=100_000, description="Requests per second it may make.")
    may_create_subaccounts: StrictBool | None = None
    may_manage_users: StrictBool | None = Field(
        default=None, description="Whether it may create users and API keys.")


class RightsValues(BaseModel):
    channels: list[str] | None
    sender_ids: list[str] | None
    monthly_message_cap: int | None
    requests_per_second: int | None
    may_create_subaccounts: bool | None
    may_manage_users: bool | None


class RightsOut(RightsValues):
    account_id: str
    effective: RightsValues = Field(
        description="What governs the account: its rights within every account's above it.")


class SuspendAccount(_Strict):
    reason: str = Field(min_length=1, max_length=MAX_REASON_CHARS)


class ResumeAccount(_Strict):
    reason: str | None = Field(default=None, min_length=1, max_length=MAX_REASON_CHARS)


class AccountStatusOut(AccountOut):
    status_reason: str | None
