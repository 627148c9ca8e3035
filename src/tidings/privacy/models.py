"""What the privacy domain keeps in the application database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer
from sqlalchemy.orm import Mapped, mapped_column

from tidings.storage.db import Base
from tidings.storage.sqltypes import UTCDateTime

REPLAY_ROW = 1


class ErasureReplay(Base):
    """How far this database has applied the key store's erasure ledger: one row.

    It lives in the application database on purpose: a restored backup brings back an
    older value with the older data, and the replay at start-up applies every erasure
    that came after it.
    """

    __tablename__ = "erasure_replay"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

