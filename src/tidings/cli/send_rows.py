"""The rows of a ``tidings send --csv`` file, read and checked as the portal's upload
is (``messaging/csv_rows.py``), cut into chunks and keyed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tidings.messaging.csv_rows import CsvProblem, Rejection, Row, check_row, rows_of

__all__ = ["CsvProblem", "Rejection", "Row", "check_row", "chunk_key", "chunks", "read_rows"]


def read_rows(path: Path) -> list[Row]:
    """Rows of a CSV with a ``to`` column; every other column is a template variable."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        try:
            return rows_of(handle)
        except CsvProblem as problem:
            raise CsvProblem(f"{path} {problem}") from None


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
