"""The rows of a ``tidings send --csv`` file: read with their line numbers, checked, keyed.

Rows are checked here before anything is sent, with the server's own address rules,
so that one empty or malformed ``to`` is reported on its own line instead of failing
the request that carries its whole chunk.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
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


def read_rows(path: Path) -> list[Row]:
    """Rows of a CSV with a ``to`` column; every other column is a template variable."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "to" not in reader.fieldnames:
            raise CsvProblem(f"{path} needs a header row with a 'to' column")
        rows, line = [], reader.line_num + 1
        for record in reader:
            variables = {k: v for k, v in record.items() if k and k != "to" and v is not None}
            rows.append(Row(line, (record.get("to") or "").strip(), variables))
            line = reader.line_num + 1
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


def chunks(rows: Sequence[Row], size: int) -> Iterator[list[Row]]:
    """Chunks by position in the file, so that correcting one row changes one chunk."""
    for start in range(0, len(rows), size):
        yield list(rows[start:start + size])


def chunk_key(payload: dict[str, Any], *, first_line: int, run_id: str) -> str:
    """The ``Idempotency-Key`` of one request: a hash of everything it sends.

    The same file with the same options gives the same keys, so a rerun (after a
    crash, a lost connection or a partly rejected file) sends no row twice; a new
    ``run_id`` sends the same file again on purpose.
    """
    material = json.dumps({"run": run_id, "line": first_line, **payload}, sort_keys=True,
                          ensure_ascii=False)
    return "csv-" + hashlib.sha256(material.encode()).hexdigest()
