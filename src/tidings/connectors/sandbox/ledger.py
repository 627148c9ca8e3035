"""The sandbox carrier's own durable ledger: what it was sent and which receipts it owes.

A remote carrier keeps its own records, so the sandbox does too: in its own database
(SQLite or PostgreSQL), with its own engine and metadata. It never shares a transaction
or a schema with the pipeline it stands in for, so a crash on either side is seen by the
other exactly as it would be with a real carrier.

The ledger stores no phone numbers, not even hashed: only ``route``, the magic number
that chose the outcome or ``"default"``. Every write
is batched: one transaction per submit batch and one per receipt round.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    bindparam,
    case,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tidings.storage.sqltypes import UTCDateTime

_T = TypeVar("_T")

_SQLITE_BEGIN = "sandbox_sqlite_begin"  # execution option: how SQLite begins a transaction
# Keeps statements well under the bind-parameter limits of SQLite and asyncpg (32k).
_CHUNK = 500


metadata = MetaData()

submissions = Table(
    "sandbox_submissions",
    metadata,
    Column("message_id", Text, primary_key=True),
    Column("carrier_message_id", Text, unique=True, nullable=True),
    Column("route", Text, nullable=False),  # the magic number or "default", never a real number
    Column("attempts", Integer, nullable=False),
    Column("accepted", Boolean, nullable=False),
    Column("receipt_status", Text, nullable=True),
    Column("receipt_error", Text, nullable=True),
    Column("receipt_due_at", UTCDateTime(), nullable=True),
    Column("receipt_emitted_at", UTCDateTime(), nullable=True),
    Column("submitted_at", UTCDateTime(), nullable=False),
)

_OWED = text("receipt_emitted_at IS NULL AND receipt_status IS NOT NULL")
# Partial index: the receipt round only ever scans receipts still owed, oldest first.
Index(
    "ix_sandbox_submissions_receipts_owed",
    submissions.c.receipt_due_at,
    submissions.c.message_id,
    sqlite_where=_OWED,
    postgresql_where=_OWED,
)


@dataclass(frozen=True)
class Acceptance:
    """What the carrier decides when it accepts a message: its id and the receipt it owes."""

    carrier_message_id: str
    receipt_status: str | None  # None: no receipt will ever come
    receipt_error: str | None
    receipt_due_at: datetime | None


@dataclass(frozen=True)
class FirstAttempt:
    """The carrier's answer to a message it has never seen (``acceptance`` None: not accepted)."""

    message_id: str
    route: str
    acceptance: Acceptance | None


@dataclass(frozen=True)
class SubmissionRow:
    """One ledger row as stored."""

    message_id: str
    carrier_message_id: str | None
    route: str
    attempts: int
    accepted: bool
    receipt_status: str | None
    receipt_error: str | None
    receipt_due_at: datetime | None
    receipt_emitted_at: datetime | None
    submitted_at: datetime


@dataclass(frozen=True)
class DueReceipt:
    """A receipt that is due and not yet taken by the sink."""

    message_id: str
    carrier_message_id: str
    status: str
    error_code: str | None


# Decides whether a stored, not-yet-accepted row is accepted now (after its attempt count).
Promote = Callable[[SubmissionRow], Acceptance | None]


class SandboxLedger:
    """The sandbox carrier's database: submissions, planned receipts, and emitted receipts.

    ``url`` is an async SQLAlchemy URL, e.g. ``sqlite+aiosqlite:////data/sandbox-carrier.db``
    or ``postgresql+asyncpg://user@host/db``. ``schema`` (PostgreSQL) puts the table in that
    existing schema instead of the default one. The table is created on first use.
    """

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self._engine = _make_engine(url, schema)
        self._ready = False
        self._ready_lock = asyncio.Lock()

    @property
    def dialect(self) -> str:
        """The backend's name (``sqlite`` or ``postgresql``)."""
        return self._engine.dialect.name

    async def open(self) -> None:
        """Create the table if missing; safe to call many times."""
        async with self._ready_lock:
            if self._ready:
                return
            async with self._engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
            self._ready = True

    async def close(self) -> None:
        """Close every pooled connection (the ledger opens new ones if used again)."""
        await self._engine.dispose()

    async def record_submissions(
        self, attempts: Sequence[FirstAttempt], now: datetime, promote: Promote
    ) -> dict[str, SubmissionRow]:
        """Record one submit batch in one transaction and return the stored row per message.

        A new message gets the row its ``FirstAttempt`` describes; a known one only has its
        ``attempts`` counted, then ``promote`` may accept it (e.g. after a throttled first
        attempt). The rows returned are what every submit of the message answers from.
        """
        await self.open()
        firsts, counts = _dedupe(attempts)
        async with self._engine.begin() as conn:
            await self._upsert(conn, firsts, counts, now)
            rows = await _read_rows(conn, sorted(firsts))
            promoted = _promotions(rows.values(), promote)
            if promoted:
                await _apply_promotions(conn, promoted)
                rows.update(await _read_rows(conn, sorted(promoted)))
        return rows

    async def due_receipts(self, now: datetime, limit: int) -> list[DueReceipt]:
        """Receipts due by ``now`` and not yet taken, oldest first, at most ``limit``."""
        await self.open()
        c = submissions.c
        query = (
            select(c.message_id, c.carrier_message_id, c.receipt_status, c.receipt_error)
            .where(_owed(), c.receipt_due_at <= now)
            .order_by(c.receipt_due_at, c.message_id)
            .limit(limit)
        )
        async with self._reading() as conn:
            result = await conn.execute(query)
            return [DueReceipt(r[0], r[1], r[2], r[3]) for r in result]

    async def next_due(self) -> datetime | None:
        """When the earliest receipt still owed falls due (None: nothing owed)."""
        await self.open()
        query = select(func.min(submissions.c.receipt_due_at)).where(_owed())
        async with self._reading() as conn:
            due: datetime | None = (await conn.execute(query)).scalar()
            return due

    async def settle_receipts(
        self, taken: Sequence[str], refused: Sequence[str], now: datetime
    ) -> None:
        """Mark ``taken`` receipts emitted and re-queue ``refused`` ones, in one transaction.

        Refused receipts become due ``now``, behind every receipt due earlier: they are
        offered again next round, but a pile of them cannot starve newer receipts.
        """
        if not taken and not refused:
            return
        await self.open()
        c = submissions.c
        async with self._engine.begin() as conn:
            for chunk in _chunks(sorted(taken)):
                await conn.execute(
                    update(submissions)
                    .where(c.message_id.in_(chunk), c.receipt_emitted_at.is_(None))
                    .values(receipt_emitted_at=now)
                )
            for chunk in _chunks(sorted(refused)):
                await conn.execute(
                    update(submissions)
                    .where(c.message_id.in_(chunk), _owed())
                    .values(receipt_due_at=now)
                )

    async def stats(self) -> dict[str, int]:
        """Counts for tests and benchmarks: rows, accepted, resubmissions, receipts."""
        await self.open()
        c = submissions.c
        query = select(
            func.count(),
            _count_where(c.accepted.is_(True)),
            func.coalesce(func.sum(c.attempts - 1), 0),
            _count_where(_owed()),
            _count_where(c.receipt_emitted_at.is_not(None)),
        ).select_from(submissions)
        async with self._reading() as conn:
            row = (await conn.execute(query)).one()
        keys = ("rows", "accepted", "resubmissions", "receipts_pending", "receipts_emitted")
        return {key: int(value or 0) for key, value in zip(keys, row, strict=True)}

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        # Reads need no write lock on SQLite (WAL readers never block the writer).
        async with self._engine.connect() as conn:
            yield await conn.execution_options(**{_SQLITE_BEGIN: "DEFERRED"})

    async def _upsert(
        self,
        conn: AsyncConnection,
        firsts: dict[str, FirstAttempt],
        counts: Counter[str],
        now: datetime,
    ) -> None:
        # Sorted keys: concurrent batches lock rows in the same order (no PostgreSQL deadlock).
        params = [_insert_params(firsts[mid], counts[mid], now) for mid in sorted(firsts)]
        for chunk in _chunks(params):
            await conn.execute(self._upsert_statement(), chunk)

    def _upsert_statement(self) -> Any:
        # INSERT ... ON CONFLICT: two concurrent submits of one message make one row.
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        stmt = dialect.insert(submissions)
        return stmt.on_conflict_do_update(
            index_elements=[submissions.c.message_id],
            set_={"attempts": submissions.c.attempts + stmt.excluded.attempts},
        )


def _make_engine(url: str, schema: str | None) -> AsyncEngine:
    options: dict[str, Any] = {}
    if schema is not None:
        options["schema_translate_map"] = {None: schema}
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, execution_options=options)
        _tune_sqlite(engine)
        return engine
    return create_async_engine(
        url, pool_size=5, max_overflow=5, pool_pre_ping=True, execution_options=options
    )


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # an accepted submit survives a power cut
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writes take the lock up front (IMMEDIATE): a deferred read-then-write transaction
        # can fail with SQLITE_BUSY at once instead of waiting out busy_timeout.
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _owed() -> Any:
    c = submissions.c
    return and_(c.receipt_emitted_at.is_(None), c.receipt_status.is_not(None))


def _count_where(condition: Any) -> Any:
    # SUM(CASE ...) rather than FILTER: same SQL on SQLite and PostgreSQL.
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _dedupe(attempts: Sequence[FirstAttempt]) -> tuple[dict[str, FirstAttempt], Counter[str]]:
    # A message twice in one batch is one row with two attempts (the first plan wins);
    # PostgreSQL refuses to upsert the same key twice in one statement anyway.
    firsts: dict[str, FirstAttempt] = {}
    for attempt in attempts:
        firsts.setdefault(attempt.message_id, attempt)
    return firsts, Counter(a.message_id for a in attempts)


def _insert_params(first: FirstAttempt, count: int, now: datetime) -> dict[str, Any]:
    acceptance = first.acceptance
    return {
        "message_id": first.message_id,
        "carrier_message_id": acceptance.carrier_message_id if acceptance else None,
        "route": first.route,
        "attempts": count,
        "accepted": acceptance is not None,
        "receipt_status": acceptance.receipt_status if acceptance else None,
        "receipt_error": acceptance.receipt_error if acceptance else None,
        "receipt_due_at": acceptance.receipt_due_at if acceptance else None,
        "receipt_emitted_at": None,
        "submitted_at": now,
    }


async def _read_rows(conn: AsyncConnection, message_ids: Sequence[str]) -> dict[str, SubmissionRow]:
    rows: dict[str, SubmissionRow] = {}
    for chunk in _chunks(message_ids):
        result = await conn.execute(select(submissions).where(submissions.c.message_id.in_(chunk)))
        rows.update((row.message_id, _to_row(row)) for row in result)
    return rows


def _to_row(row: Row[Any]) -> SubmissionRow:
    return SubmissionRow(
        message_id=row.message_id,
        carrier_message_id=row.carrier_message_id,
        route=row.route,
        attempts=row.attempts,
        accepted=bool(row.accepted),
        receipt_status=row.receipt_status,
        receipt_error=row.receipt_error,
        receipt_due_at=row.receipt_due_at,
        receipt_emitted_at=row.receipt_emitted_at,
        submitted_at=row.submitted_at,
    )


def _promotions(rows: Any, promote: Promote) -> dict[str, Acceptance]:
    promoted: dict[str, Acceptance] = {}
    for row in rows:
        if row.accepted:
            continue
        acceptance = promote(row)
        if acceptance is not None:
            promoted[row.message_id] = acceptance
    return promoted


async def _apply_promotions(conn: AsyncConnection, promoted: dict[str, Acceptance]) -> None:
    c = submissions.c
    # "accepted = false" guard: of two concurrent promotions only the first sticks, and
    # both callers read back the winner's carrier id.
    stmt = (
        update(submissions)
        .where(c.message_id == bindparam("mid"), c.accepted.is_(False))
        .values(
            accepted=True,
            carrier_message_id=bindparam("cid"),
            receipt_status=bindparam("status"),
            receipt_error=bindparam("error"),
            receipt_due_at=bindparam("due", type_=UTCDateTime()),
        )
    )
    params = [
        {
            "mid": mid,
            "cid": a.carrier_message_id,
            "status": a.receipt_status,
            "error": a.receipt_error,
            "due": a.receipt_due_at,
        }
        for mid, a in sorted(promoted.items())
    ]
    await conn.execute(stmt, params)


def _chunks(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
