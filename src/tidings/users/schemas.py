"""Request and response bodies of logging in and of an account's users."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from tidings.accounts.permissions import Permission


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserOut(BaseModel):
    id: str
    email: str
    role: str
    status: str
    mfa_enabled: bool
    must_change_password: bool
    created_at: datetime


class Login(_Strict):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(BaseModel):
    token: str = Field(description="Send it as 'Authorization: Bearer <token>'.")
    expires_at: datetime
    user: UserOut


class SecondFactorOut(BaseModel):
    mfa_required: Literal[True] = True
    challenge: str = Field(description="Send it with a code to POST /v1/auth/mfa.")


class SecondFactor(_Strict):
    challenge: str = Field(min_length=1, max_length=400)
    code: str = Field(min_length=1, max_length=40,
                      description="Six digits from the app, or a recovery code.")


class ChangePassword(_Strict):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class TotpEnrolmentOut(BaseModel):
    otpauth_uri: str
    secret: str = Field(description="For apps that cannot scan: type it in.")
    qr_svg: str = Field(description="The otpauth URI as a QR code, an SVG document.")


class ConfirmTotp(_Strict):
    code: str = Field(min_length=1, max_length=20)


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(description="Shown once; each works once.")


class SessionOut(BaseModel):
    user: UserOut
    account_id: str | None = Field(description="Null for the operator's staff.")
    permissions: list[Permission] = Field(description="In the account; none for staff.")
    gate: str | None = Field(description="What must be done first: password_change_required "
                                         "or mfa_required; null: nothing.")


class InviteUser(_Strict):
    email: str = Field(min_length=1, max_length=320)
    role: str = Field(min_length=1, max_length=40)


class NewUserOut(BaseModel):
    id: str
    email: str
    role: str
    temporary_password: str = Field(description="Shown once; give it to the person in a "
                                                "secure manner. It must be changed at the "
                                                "first log-in.")
    expires_at: datetime


class UpdateUser(_Strict):
    role: str | None = Field(default=None, min_length=1, max_length=40)
    disabled: StrictBool | None = None
