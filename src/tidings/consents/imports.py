"""A CSV of consent events: read, and every row checked as a ``POST /v1/consents`` body
is, before anything is stored. The file as a whole is refused (nothing imported) when it
is empty, not UTF-8 CSV, too long, or its header names a column that is not one of
``COLUMNS`` or lacks a required one; otherwise each bad row is reported by its number,
column and reason, and the good ones are imported (``api.import_consents``).

Rows are numbered as a spreadsheet numbers them: the header is row 1, the first event
row 2. A row's empty cells are as if the column were not there.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from tidings.consents.schemas import RecordConsent, RowError
from tidings.consents.service import CheckedConsent, check_consent
from tidings.web.errors import InvalidRequest, TidingsError

__all__ = ["COLUMNS", "MAX_ROWS", "REQUIRED", "CheckedFile", "check_file", "read_rows"]

COLUMNS = ("number", "email", "channel", "purpose", "mechanism", "source", "evidence_ref",
           "text_version", "text_sha256", "captured_at", "ip")
# Every row states where its consent came from and what proves it (Dexatel's terms ask
# for proof of every opt-in); the person's column is number or email, by channel.
REQUIRED = ("channel", "purpose", "mechanism", "source", "evidence_ref")
MAX_ROWS = 100_000


@dataclass(frozen=True)
class CheckedFile:
    """What a file came to: the rows that may be imported, each with its row number, and
    the reasons the others may not (one or more a row)."""

    good: list[tuple[int, CheckedConsent]]
    errors: list[RowError]
    refused: int


def check_file(raw: bytes, *, now: datetime) -> CheckedFile:
    """Every row of ``raw`` checked; ``InvalidRequest`` for a file refused whole."""
    good: list[tuple[int, CheckedConsent]] = []
    errors: list[RowError] = []
    refused = 0
    for row, cells in read_rows(raw):
        checked = _check_row(row, cells, now)
        if isinstance(checked, list):
            errors += checked
            refused += 1
        else:
            good.append((row, checked))
    if not good and not refused:
        raise InvalidRequest("The file has a header but no rows.", code="empty_file",
                             parameter="file")
    return CheckedFile(good, errors, refused)


def read_rows(raw: bytes) -> Iterator[tuple[int, dict[str, str | None]]]:
    """Each row with its number, cells by column; the header checked first."""
    if not raw.strip():
        raise InvalidRequest("The file is empty.", code="empty_file", parameter="file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _not_csv("it is not UTF-8 text") from None
    # Strict: a quote left open would swallow the rows after it into one cell.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = _header(next(reader, []))
        for count, cells in enumerate(reader, start=1):
            if count > MAX_ROWS:
                raise InvalidRequest(f"The file has more than {MAX_ROWS:,} rows: split it.",
                                     code="too_many_rows", parameter="file")
            if not any(cell.strip() for cell in cells):
                continue  # a blank line, as a spreadsheet leaves at the end
            yield count + 1, _cells(header, cells)
    except csv.Error as broken:
        raise _not_csv(str(broken)) from None


def _not_csv(why: str) -> InvalidRequest:
    return InvalidRequest(f"The file is not CSV: {why}.", code="invalid_csv",
                          parameter="file")


def _header(names: list[str]) -> list[str]:
    header = [name.strip().lower() for name in names]
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        raise InvalidRequest(
            f"Unknown column {unknown[0][:40]!r}: the columns are {', '.join(COLUMNS)}.",
            code="unknown_csv_column", parameter="file")
    missing = [name for name in REQUIRED if name not in header]
    if missing or not {"number", "email"} & set(header):
        raise InvalidRequest(
            f"The header needs the columns {', '.join(REQUIRED)} and number or email; "
            f"{', '.join(missing) or 'number or email'} missing.",
            code="csv_columns_missing", parameter="file")
    if len(set(header)) != len(header):
        raise InvalidRequest("A column is named twice in the header.",
                             code="duplicate_csv_column", parameter="file")
    return header


def _cells(header: list[str], cells: list[str]) -> dict[str, str | None]:
    if len(cells) > len(header):
        return {"": None}  # more cells than columns: reported by _check_row
    return {name: cell.strip() or None for name, cell in zip(header, cells, strict=False)}


def _check_row(row: int, cells: dict[str, str | None],
               now: datetime) -> CheckedConsent | list[RowError]:
    if "" in cells:
        return [RowError(row=row, column=None, code="too_many_cells",
                         detail="The row has more cells than the header has columns.")]
    given = {name: value for name, value in cells.items() if value is not None}
    try:
        return check_consent(RecordConsent.model_validate(given), now=now)
    except ValidationError as invalid:
        return [_schema_error(row, error) for error in invalid.errors()]
    except TidingsError as refused:
        column = str(refused.extra.get("parameter") or "")
        return [RowError(row=row, column=column if column in COLUMNS else None,
                         code=refused.code, detail=refused.detail)]


def _schema_error(row: int, error: ErrorDetails) -> RowError:
    """A schema's complaint as a row's: ``<column>_missing`` for an empty required cell,
    ``invalid_<column>`` for any other."""
    column = str(error["loc"][0]) if error["loc"] else ""
    missing = error["type"] in ("missing", "string_too_short")
    detail = error["msg"].removeprefix("Value error, ")
    return RowError(row=row, column=column or None,
                    code=f"{column}_missing" if missing else f"invalid_{column}",
                    detail="This cell is empty; the column is required." if missing
                    else detail)
