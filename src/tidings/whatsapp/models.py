"""When each customer last wrote to an account on WhatsApp (the number as a blind index)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.core.data_categories import DETERMINISTIC_ID, UNTIL_ERASED_RULE, operational, personal
from tidings.storage.db import Base
from tidings.storage.sqltypes import UTCDateTime


class CustomerWindow(Base):
    __tablename__ = "whatsapp_windows"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True,
                                           info=operational())
    customer_index: Mapped[str] = mapped_column(String(64), primary_key=True,
                                                info=personal(DETERMINISTIC_ID, UNTIL_ERASED_RULE))
    last_inbound_at: Mapped[datetime] = mapped_column(UTCDateTime)
