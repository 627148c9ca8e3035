"""The rows of a CSV of recipients: a ``to`` column, every other column a template
variable; each row with its line number, checked with the server's own address rules
before anything is sent, so that one empty or malformed ``to`` is reported on its own
line. Read by ``tidings send --csv`` and by the portal's upload."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tidings.messaging.addresses import AddressError, normalize_e164


@dataclass(frozen=True)
class Row:
    line: int  # where the record starts in the file; the header is line 1
    to: str
    variables: dict[str, str]

    def recipient(self) -> dict[str, Any]:
        return {"to": self.to, "variables": self.variables}


@dataclass(frozen=True)
class Rejection:
    """A row that was not sent: its line, the API's field name (if any), code and detail."""

    line: int
    field: str | None
    code: str
    detail: str

    def __str__(self) -> str:
        field = f"{self.field}: " if self.field else ""
        return f"line {self.line}: {field}{self.detail} ({self.code})"


class CsvProblem(ValueError):
    """The file as a whole cannot be sent (no header, no ``to`` column)."""


def rows_of(lines: Iterable[str]) -> list[Row]:
    """Rows of a CSV with a ``to`` column; every other column is a template variable."""
    reader = csv.DictReader(lines)
    try:
        if not reader.fieldnames or "to" not in reader.fieldnames:
            raise CsvProblem("needs a header row with a 'to' column")
        rows, line = [], reader.line_num + 1
        for record in reader:
            variables = {k: v for k, v in record.items() if k and k != "to" and v is not None}
            rows.append(Row(line, (record.get("to") or "").strip(), variables))
            line = reader.line_num + 1
    except csv.Error as broken:
        raise CsvProblem(f"is not a CSV file: {broken}") from None
    return rows


def check_row(row: Row) -> Rejection | None:
    """The server's rules for ``to``, applied before sending."""
    if not row.to:
        return Rejection(row.line, "to", "invalid_phone_number", "is empty")
    try:
        normalize_e164(row.to)
    except AddressError as exc:
        return Rejection(row.line, "to", exc.code, exc.message)
    return None


