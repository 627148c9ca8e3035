"""The outbox: work to do is a row, written in the transaction that caused it.

Workers claim due jobs by setting a lease (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, the single writer on SQLite), do the work, and delete the job in
the transaction that records its result. A crash leaves the lease to expire;
the job runs again, so every handler must be idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Index,
    Integer,
    String,
    Table,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import Select

from tidings.core.data_categories import EMAIL, PLATFORM_MAIL_RULE, operational, personal
from tidings.storage.bulk import insert_many
from tidings.storage.db import SYSTEM, Base, BigIntPK, Database, SessionOrConnection
from tidings.storage.sqltypes import UTCDateTime


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_kind_run_at", "kind", "run_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(40), info=operational())
    kind: Mapped[str] = mapped_column(String(40), info=operational())
    ref_id: Mapped[str] = mapped_column(String(100), info=operational())
    # SQL NULL for no payload (not JSON 'null'): claims read it back without a parse.
    # Ids and request ids, but a ``mail.send`` job's holds the mail's address and text,
    # sealed under the platform's keys until the mail is sent or given up.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True),
                                                           info=personal(EMAIL, PLATFORM_MAIL_RULE))
    run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


JOBS = cast(Table, Job.__table__)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A leased job as its handler sees it: a plain row, cheap to build by the hundred."""

    id: int
    tenant_id: str
    kind: str
    ref_id: str
    payload: dict[str, Any] | None
    run_at: datetime
    attempts: int
    locked_until: datetime | None
    created_at: datetime


def job_row(*, tenant: str, kind: str, ref_id: str, now: datetime,
            run_at: datetime | None = None, payload: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """A job as a row for a bulk insert (``enqueue_rows``)."""
    return {"tenant_id": tenant, "kind": kind, "ref_id": ref_id, "payload": payload,
            "run_at": run_at or now, "attempts": 0, "locked_until": None, "created_at": now}


async def enqueue_rows(session: SessionOrConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await insert_many(session, JOBS, rows)


async def claim(db: Database, *, kind: str, limit: int, now: datetime,
                lease: timedelta) -> list[ClaimedJob]:
    """Lease up to ``limit`` due jobs of ``kind`` with one ``UPDATE … RETURNING``."""
    jobs = Base.metadata.tables["jobs"]
    due = (select(jobs.c.id)
           .where(jobs.c.kind == kind, jobs.c.run_at <= now,
                  or_(jobs.c.locked_until.is_(None), jobs.c.locked_until < now))
           .order_by(jobs.c.run_at, jobs.c.id).limit(limit))
    if db.is_sqlite and not await _any_due(db, due):
        return []  # an idle poll must not queue for SQLite's single write lock
    chosen: Any = due.scalar_subquery()
    if not db.is_sqlite:
        # Picked once, in a CTE PostgreSQL must not fold in: as a subquery a nested-loop
        # plan may run it again for each row of ``jobs``, every run skipping the rows
        # the last one locked, and so claim every due job whatever the limit.
        chosen = select(due.with_for_update(skip_locked=True)
                        .cte("due").prefix_with("MATERIALIZED").c.id)
    statement = (update(jobs).where(jobs.c.id.in_(chosen))
                 .values(locked_until=now + lease, attempts=jobs.c.attempts + 1)
                 .returning(*jobs.c))
    async with db.core(tenant=SYSTEM) as session:
        rows = (await session.execute(statement)).mappings().all()
    return sorted((ClaimedJob(**row) for row in rows), key=lambda job: (job.run_at, job.id))


async def _any_due(db: Database, due: Select[Any]) -> bool:
    async with db.core(tenant=SYSTEM, write=False) as session:
        return (await session.execute(due.limit(1))).first() is not None


async def extend(db: Database, jobs: Sequence[ClaimedJob], *, leased_until: datetime,
                 until: datetime) -> int:
    """Renew a lease still held: jobs whose lease is exactly ``leased_until`` now run to ``until``.

    A job completed, retried later (lease cleared) or claimed again by another worker after
    the lease ran out no longer carries that lease and is left alone. Returns how many
    leases were renewed.
    """
    if not jobs:
        return 0
    async with db.core(tenant=SYSTEM) as session:
        result = await session.execute(
            update(Job).where(Job.id.in_([j.id for j in jobs]),
                              Job.locked_until == leased_until)
            .values(locked_until=until)
            .execution_options(synchronize_session=False)
        )
    return int(getattr(result, "rowcount", 0) or 0)


async def complete(session: SessionOrConnection, job_ids: Sequence[int]) -> None:
    if job_ids:
        await session.execute(delete(Job).where(Job.id.in_(list(job_ids))))


async def retry_many_later(session: SessionOrConnection,
                           retries: Sequence[tuple[int, datetime]]) -> None:
    """Release many jobs to run again later, in one statement."""
    if retries:
        table = Base.metadata.tables["jobs"]
        await session.execute(
            update(table).where(table.c.id == bindparam("job_id"))
            .values(run_at=bindparam("retry_at"), locked_until=None),
            [{"job_id": job_id, "retry_at": run_at} for job_id, run_at in retries])


async def depth(session: SessionOrConnection) -> dict[str, int]:
    """Jobs waiting, by kind (for /metrics)."""
    rows = await session.execute(select(Job.kind, func.count()).group_by(Job.kind))
    return {kind: count for kind, count in rows.all()}
