"""``tidings send``: one template to every row of a CSV file, through the HTTP API."""

from __future__ import annotations

import csv
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from tidings.cli.common import fail


def read_recipients(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV with a ``to`` column; every other column is a template variable."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "to" not in reader.fieldnames:
            fail(f"{path} needs a header row with a 'to' column")
        rows = []
        for row in reader:
            variables = {k: v for k, v in row.items() if k and k != "to" and v is not None}
            rows.append({"to": (row.get("to") or "").strip(), "variables": variables})
    return rows


def chunks(items: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def post_batch(url: str, api_key: str, payload: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - the operator chooses the URL
        f"{url.rstrip('/')}/v1/messages/batch", data=json.dumps(payload).encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            result: dict[str, Any] = json.loads(response.read())
            return result
    except urllib.error.HTTPError as exc:
        problem = json.loads(exc.read() or b"{}")
        fail(f"{exc.code} {problem.get('code', '')}: {problem.get('detail', exc.reason)}")
    except urllib.error.URLError as exc:
        fail(f"cannot reach {url}: {exc.reason}")
    raise AssertionError("unreachable")


@click.command("send")
@click.option("--csv", "csv_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with a 'to' column and one column per template variable.")
@click.option("--body", required=True, help='Template, e.g. "Hi {name}".')
@click.option("--from", "sender", required=True, help="Sender id or number.")
@click.option("--channel", default="sms", show_default=True)
@click.option("--status-callback", default=None, help="URL for status webhooks.")
@click.option("--url", envvar="TIDINGS_URL", default="http://127.0.0.1:8000", show_default=True)
@click.option("--api-key", envvar="TIDINGS_API_KEY", required=True,
              help="API key (or set TIDINGS_API_KEY).")
@click.option("--chunk", default=1000, show_default=True, type=click.IntRange(1, 10_000),
              help="Recipients per request.")
def send(csv_path: Path, body: str, sender: str, channel: str, status_callback: str | None,
         url: str, api_key: str, chunk: int) -> None:
    """Send BODY to every recipient in the CSV, with a progress bar."""
    recipients = read_recipients(csv_path)
    if not recipients:
        fail(f"{csv_path} has no recipients")
    accepted, rejected = 0, []
    with click.progressbar(length=len(recipients), label="Sending",
                           show_pos=True) as bar:
        for offset, part in enumerate(chunks(recipients, chunk)):
            payload = {"from": sender, "body": body, "channel": channel,
                       "recipients": part}
            if status_callback:
                payload["status_callback"] = status_callback
            result = post_batch(url, api_key, payload)
            accepted += result["accepted"]
            rejected += [(offset * chunk + r["index"], r["error"]) for r in result["results"]
                         if r["status"] == "rejected"]
            bar.update(len(part))
    click.echo(f"accepted {accepted}, rejected {len(rejected)}")
    for row, error in rejected[:50]:
        click.echo(f"  row {row + 2}: {error['code']}: {error['detail']}")
    if len(rejected) > 50:
        click.echo(f"  ... and {len(rejected) - 50} more")
