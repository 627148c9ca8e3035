"""``tidings send``: one template to every row of a CSV file, through the HTTP API.

Rows are checked before sending (``send_rows.check_row``); each chunk of the file goes
in one ``POST /v1/messages/batch`` with an ``Idempotency-Key`` derived from what it
sends, so running the same command again sends only what did not go the first time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from tidings.cli.common import fail
from tidings.cli.send_api import Answer, Unreachable, post_batch
from tidings.cli.send_rows import (
    CsvProblem,
    Rejection,
    Row,
    check_row,
    chunk_key,
    chunks,
    read_rows,
)


@dataclass
class Tally:
    total: int
    accepted: int = 0
    replayed: int = 0  # accepted by an earlier run of the same file: not sent again
    rejections: list[Rejection] = field(default_factory=list)
    stopped_at: int | None = None  # the first line not sent, after an error
    error: str | None = None

    def summary(self) -> str:
        text = f"accepted {self.accepted} of {self.total} rows, rejected {len(self.rejections)}"
        if self.replayed:
            text += f" ({self.replayed} accepted by an earlier run, not sent again)"
        if self.stopped_at is not None:
            text += f"; nothing sent from line {self.stopped_at} on"
        return text


@click.command("send")
@click.option("--csv", "csv_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with a 'to' column and one column per template variable.")
@click.option("--body", required=True, help='Template, e.g. "Hi {name}".')
@click.option("--from", "sender", required=True, help="Sender id or number.")
@click.option("--channel", default="sms", show_default=True)
@click.option("--status-callback", default=None, help="URL for status webhooks.")
@click.option("--url", default=None,
              help="The API [default: http://127.0.0.1:TIDINGS_PORT, where "
                   "`tidings serve` listens].")
@click.option("--api-key", envvar="TIDINGS_API_KEY", required=True,
              help="API key (or set TIDINGS_API_KEY).")
@click.option("--chunk", default=1000, show_default=True, type=click.IntRange(1, 10_000),
              help="Rows per request.")
@click.option("--run-id", default="", metavar="TEXT",
              help="Part of every request's Idempotency-Key: the same file, options and "
                   "run id send nothing twice; a new run id sends the file again.")
def send(csv_path: Path, body: str, sender: str, channel: str, status_callback: str | None,
         url: str | None, api_key: str, chunk: int, run_id: str) -> None:
    """Send BODY to every row of the CSV, with a progress bar.

    Rejected rows are listed with their line; the exit code is 1 when any row was
    rejected or not sent. Run the same command again to finish after an error: rows
    already accepted are not sent twice.
    """
    try:
        rows = read_rows(csv_path)
    except CsvProblem as exc:
        fail(str(exc))
    if not rows:
        fail(f"{csv_path} has no recipients")
    options: dict[str, Any] = {"from": sender, "body": body, "channel": channel}
    if status_callback:
        options["status_callback"] = status_callback
    tally = _send_all(url or default_api_url(), api_key, options, rows, chunk, run_id)
    _report(tally)


def default_api_url() -> str:
    """Where ``tidings serve`` listens, from the same settings (TIDINGS_HOST, TIDINGS_PORT)."""
    from tidings.core.settings import Settings

    settings = Settings()
    host = settings.host if settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"


def _send_all(url: str, api_key: str, options: dict[str, Any], rows: list[Row], size: int,
              run_id: str) -> Tally:
    tally = Tally(total=len(rows))
    with click.progressbar(length=len(rows), label="Sending", show_pos=True) as bar:
        for part in chunks(rows, size):
            try:
                _send_chunk(url, api_key, options, part, run_id, tally)
            except Unreachable as exc:
                tally.error = str(exc)
            if tally.error is not None:
                tally.stopped_at = part[0].line
                break
            bar.update(len(part))
    return tally


def _send_chunk(url: str, api_key: str, options: dict[str, Any], part: list[Row],
                run_id: str, tally: Tally) -> None:
    good = []
    for row in part:
        problem = check_row(row)
        if problem is None:
            good.append(row)
        else:
            tally.rejections.append(problem)
    while good:
        payload = {**options, "recipients": [row.recipient() for row in good]}
        answer = post_batch(url, api_key, payload, idempotency_key=chunk_key(
            payload, first_line=part[0].line, run_id=run_id))
        if answer.status == 200:
            _count(tally, good, answer)
            return
        refused = _refused_rows(good, answer)
        if not refused:  # not about rows: every chunk would fail the same way
            tally.error = answer.problem()
            return
        tally.rejections += refused  # the server named them: send the rest without them
        lines = {rejection.line for rejection in refused}
        good = [row for row in good if row.line not in lines]


def _count(tally: Tally, sent: list[Row], answer: Answer) -> None:
    tally.accepted += answer.body["accepted"]
    if answer.replayed:
        tally.replayed += answer.body["accepted"]
    for result in answer.body["results"]:
        if result["status"] == "rejected":
            error = result["error"]
            tally.rejections.append(Rejection(sent[result["index"]].line, None, error["code"],
                                              error["detail"]))


def _refused_rows(sent: list[Row], answer: Answer) -> list[Rejection]:
    """The rows a ``validation_failed`` names (``body.recipients.N.field``); none if it
    names anything else."""
    errors = answer.body.get("errors") or []
    if answer.body.get("code") != "validation_failed" or not errors:
        return []
    refused = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", [])]
        if loc[:2] != ["body", "recipients"] or len(loc) < 3 or not loc[2].isdigit() \
                or int(loc[2]) >= len(sent):
            return []
        refused.append(Rejection(sent[int(loc[2])].line, ".".join(loc[3:]) or "recipient",
                                 str(answer.body.get("code")), str(error.get("msg"))))
    return refused


def _report(tally: Tally) -> None:
    click.echo(tally.summary())
    for rejection in sorted(tally.rejections, key=lambda r: r.line):
        click.echo(f"  {rejection}")
    if tally.error is not None:
        fail(f"{tally.error}\nRun the same command again to send the rest: "
             "rows already accepted are not sent twice.")
    if tally.rejections:
        raise SystemExit(1)
