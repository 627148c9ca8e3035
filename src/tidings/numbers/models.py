"""Phone numbers and email addresses an account owns (business addresses, not personal
data): where its inbound messages arrive."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db import Base
from tidings.sqltypes import UTCDateTime


class PhoneNumber(Base):
    __tablename__ = "phone_numbers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    number: Mapped[str] = mapped_column(String(254), unique=True)  # E.164 or an email address
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
