"""SMPP credentials: a system_id and password per account bind (password kept as argon2)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.core.data_categories import AUTHENTICATION, operational
from tidings.storage.db import Base
from tidings.storage.sqltypes import UTCDateTime


class SmppCredential(Base):
    __tablename__ = "smpp_credentials"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, info=operational())
    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True,
                                           info=operational())
    # The bind's user name and password: a machine credential, as an API key is.
    system_id: Mapped[str] = mapped_column(String(16), unique=True,
                                           info=operational(AUTHENTICATION))
    password_hash: Mapped[str] = mapped_column(String(200), info=operational(AUTHENTICATION))
    name: Mapped[str] = mapped_column(String(200), info=operational())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
