"""Column types shared by every store (the main database, the key store, carrier ledgers)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import DateTime, LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

_ZERO = timedelta(0)
T = TypeVar("T")
Processor = Callable[[Any], Any]


# The last value written and its text. The rows of one bulk statement mostly share one
# ``now`` (created_at, updated_at, run_at...): the same object, formatted once.
_last_written: tuple[datetime | None, str | None] = (None, None)  # (value, its text)


def _sqlite_text(value: datetime | None) -> str | None:
    global _last_written
    last = _last_written  # one read: a thread writing a carrier ledger may replace it
    if value is last[0]:
        return last[1]
    if value is None:  # a NULL between two of the same value keeps the memo
        return None
    text = _utc_text(value)
    _last_written = (value, text)
    return text


def _utc_text(value: datetime) -> str:
    if value.tzinfo is UTC:  # the usual case: the text less its "+00:00"
        return value.isoformat(" ", "microseconds")[:-6]
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("naive datetime given to a UTC column")
    if offset != _ZERO:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


_last_read: tuple[str | None, datetime | None] = (None, None)  # (text, its value)


def _sqlite_datetime(value: str | None) -> datetime | None:
    """Rows read together often share a timestamp (a batch's ``created_at``): equal text,
    read once. Datetimes are immutable, so handing out one object twice is safe."""
    global _last_read
    last = _last_read
    if value == last[0]:
        return last[1]
    if value is None:
        return None
    parsed = datetime.fromisoformat(value).replace(tzinfo=UTC)
    _last_read = (value, parsed)
    return parsed


class _OwnSqliteProcessors(TypeDecorator[T]):
    """A column type with processors of its own on SQLite, in place of the usual two
    steps (the type's, then the dialect's): a call less per value of every bulk
    statement. ``None`` hands the value to ``sqlite3`` and back as it is."""

    cache_ok = True
    sqlite_bind: Processor | None = None
    sqlite_result: Processor | None = None

    def bind_processor(self, dialect: Dialect) -> Processor | None:
        if dialect.name == "sqlite":
            return self.sqlite_bind
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Processor | None:
        if dialect.name == "sqlite":
            return self.sqlite_result
        return super().result_processor(dialect, coltype)


class UTCDateTime(_OwnSqliteProcessors[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive).

    On SQLite each value went through two processors (ours, then the dialect's string
    formatting or parsing); ``_sqlite_text`` and ``_sqlite_datetime`` do both in one
    step and write the same text ("2026-12-01 15:37:20.123456").
    """

    impl = DateTime(timezone=True)
    cache_ok = True
    sqlite_bind = staticmethod(_sqlite_text)
    sqlite_result = staticmethod(_sqlite_datetime)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Ciphertext(_OwnSqliteProcessors[bytes]):
    """Encrypted bytes (the vault's output). On SQLite they go to the driver and come
    back as they are: ``sqlite3`` takes and returns ``bytes``, where LargeBinary's
    processors would wrap and copy each value."""

    impl = LargeBinary
    cache_ok = True
