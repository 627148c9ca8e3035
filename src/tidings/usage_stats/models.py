"""The operator's aggregate of the platform's traffic: no tenant, no person.

``service_stats`` holds one row per bucket of a day: its channel, direction and the
country of the people's numbers, with counts. It names no account, message, number,
blind index or key, so it is usage statistics in the DPAs' sense ("anonymized personal
data, usage statistics ... analyses"): it has no ``tenant_id``, no row-level policy,
and an account's purge leaves it as it is. ``service_stats_days`` records which days
are built, so that each is built once, whole, in one transaction.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.core.data_categories import operational
from tidings.storage.db import Base, BigIntPK
from tidings.storage.sqltypes import UTCDateTime


class ServiceStat(Base):
    """One bucket: a day's messages of one channel, direction and country."""

    __tablename__ = "service_stats"
    __table_args__ = (Index("ix_service_stats_day", "day"),)  # read and replaced by day

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date)  # UTC, of the messages' creation
    channel: Mapped[str] = mapped_column(String(20), info=operational())
    direction: Mapped[str] = mapped_column(String(10), info=operational())
    # ISO 3166-1 alpha-2 of the people's numbers; NULL: e-mail addresses, numbers of no
    # country, and messages whose person is erased.
    country: Mapped[str | None] = mapped_column(String(2), info=operational())
    messages: Mapped[int] = mapped_column(Integer)
    segments: Mapped[int] = mapped_column(Integer)
    delivered: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)  # undelivered, failed, expired, rejected
    # Distinct people, a lower bound (builder.py says how it is counted): what k is
    # compared with before a bucket is shown.
    subjects: Mapped[int] = mapped_column(Integer)


class ServiceStatsDay(Base):
    """A day whose buckets are built: written in the transaction that writes them."""

    __tablename__ = "service_stats_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    built_at: Mapped[datetime] = mapped_column(UTCDateTime)
    buckets: Mapped[int] = mapped_column(Integer)  # rows written for the day
