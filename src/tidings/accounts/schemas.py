"""Request and response bodies of accounts and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tidings.accounts.models import AccountStatus
from tidings.accounts.permissions import Permission
from tidings.messaging.schemas import WebhookUrl


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
