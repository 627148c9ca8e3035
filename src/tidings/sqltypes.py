"""Column types shared by every store (the main database, the key store, carrier ledgers)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

_ZERO = timedelta(0)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

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

    # On SQLite each value went through two processors (ours, then the dialect's string
    # formatting or parsing); these do both in one step and write the same text
    # ("2026-12-01 15:37:20.123456"), a measurable share of a bulk insert's CPU.
    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_text
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect,
                         coltype: Any) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_datetime
        return super().result_processor(dialect, coltype)


def _sqlite_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is UTC:  # the usual case: the text less its "+00:00"
        return value.isoformat(" ", "microseconds")[:-6]
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("naive datetime given to a UTC column")
    if offset != _ZERO:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_datetime(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


class Ciphertext(TypeDecorator[bytes]):
    """Encrypted bytes (the vault's output). On SQLite they go to the driver and come
    back as they are: ``sqlite3`` takes and returns ``bytes``, and LargeBinary's
    processors would wrap and copy each value, a call per value of every bulk
    statement."""

    impl = LargeBinary
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return None
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect,
                         coltype: Any) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return None
        return super().result_processor(dialect, coltype)
