"""Request and response bodies of the operator's notices."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tidings.mail.service import BODY_MAX_CHARS, SUBJECT_MAX_CHARS


class NoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(max_length=SUBJECT_MAX_CHARS * 2,  # the service says what is wrong
                         description="One line: the mail's subject.")
    body: str = Field(max_length=BODY_MAX_CHARS * 2, description="The mail's text.")
    account_id: str | None = Field(default=None, max_length=40,
                                   description="To the owners of this account …")
    all: bool = Field(default=False, description="… or of every active and trial account.")


class NoticeOut(BaseModel):
    queued: int = Field(description="Mails queued, one per owner.")
    accounts: int = Field(description="Accounts whose owners they go to.")
    mail_ids: list[str]
