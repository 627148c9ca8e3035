"""``tidings privacy``: data subject requests, legal holds and restrictions, as the
operator handles them for an account (processor mode: a request the operator received
is recorded in the account that controls the data, and its people are mailed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tidings.cli.common import emit, operator_actor, with_runtime

if TYPE_CHECKING:
    from tidings.privacy.schemas import RequestOut
    from tidings.runtime import Runtime

_TYPES = ("access", "rectification", "erasure", "restriction", "portability", "objection")


@click.group("privacy")
def privacy() -> None:
    """Data subject requests, legal holds and restrictions of an account."""


@privacy.group("requests")
def requests() -> None:
    """Record, list, extend, close and download data subject requests."""


def _subject(number: str | None, email: str | None) -> dict[str, str | None]:
    return {"number": number, "email": email}


def _line(out: RequestOut) -> str:
    overdue = " OVERDUE" if out.overdue else ""
    return (f"{out.id}  {out.type:<13} {out.status:<18} due {out.due_at:%Y-%m-%d %H:%M}"
            f"{overdue}")


def _emit_request(out: RequestOut, as_json: bool) -> None:
    emit(out.model_dump(mode="json"), as_json=as_json, text=_line(out))


account_option = click.option("--account", "account_id", required=True, help="Account id.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@requests.command("create")
@account_option
@click.option("--type", "type_", required=True, type=click.Choice(_TYPES))
@click.option("--number", help="The person's number, E.164.")
@click.option("--email", help="The person's e-mail address.")
@click.option("--note", help="What the person asked.")
@click.option("--rectify-to", help="A rectification's correct number or address.")
@json_option
def create(account_id: str, type_: str, number: str | None, email: str | None,
           note: str | None, rectify_to: str | None, as_json: bool) -> None:
    """Forward a request a person made to the operator to the account that controls
    their data; the account's privacy people are mailed."""
    async def work(rt: Runtime) -> None:
        from tidings.privacy.api import forward_request
        from tidings.privacy.schemas import ForwardRequest

        rectify = None
        if rectify_to is not None:
            rectify = {"email": rectify_to} if "@" in rectify_to else {"number": rectify_to}
        body = ForwardRequest.model_validate({
            "account_id": account_id, "type": type_, "subject": _subject(number, email),
            "note": note, "rectify_to": rectify})
        _emit_request(await forward_request(rt, body, actor=operator_actor()), as_json)
    with_runtime(work)


@requests.command("list")
@account_option
@click.option("--open", "open_only", is_flag=True, help="Only those not yet answered.")
@json_option
def list_(account_id: str, open_only: bool, as_json: bool) -> None:
    """The account's requests, the soonest due first."""
    async def work(rt: Runtime) -> None:
        from tidings.privacy.api import fetch_requests

        found = await fetch_requests(rt, tenant=account_id, open_only=open_only)
        emit([r.model_dump(mode="json") for r in found], as_json=as_json,
             text="\n".join(_line(r) for r in found) or "No requests.")
    with_runtime(work)


@requests.command("show")
@account_option
@click.argument("request_id")
@json_option
def show(account_id: str, request_id: str, as_json: bool) -> None:
    """One request, with its outcome."""
    async def work(rt: Runtime) -> None:
        from tidings.privacy.api import fetch_request

        out = await fetch_request(rt, tenant=account_id, request_id=request_id)
        emit(out.model_dump(mode="json"), as_json=as_json,
             text=_line(out) + "\n" + _outcome(out.outcome))
    with_runtime(work)


def _outcome(outcome: dict[str, Any]) -> str:
    return "\n".join(f"  {key}: {value}" for key, value in outcome.items())


@requests.command("extend")
@account_option
@click.argument("request_id")
@click.option("--months", type=click.IntRange(1, 2), required=True)
@click.option("--reason", required=True, help="Why, as the person is told.")
@json_option
def extend(account_id: str, request_id: str, months: int, reason: str,
           as_json: bool) -> None:
    """Extend the deadline (three months from receipt at most), before it passes."""
    async def work(rt: Runtime) -> None:
        from tidings.privacy.api import extend_request
        from tidings.privacy.schemas import ExtendRequest

        body = ExtendRequest.model_validate({"months": months, "reason": reason})
        _emit_request(await extend_request(rt, tenant=account_id, request_id=request_id,
                                           body=body, actor=operator_actor()), as_json)
    with_runtime(work)


@requests.command("reject")
@account_option
@click.argument("request_id")
@click.option("--reason", required=True)
@json_option
def reject(account_id: str, request_id: str, reason: str, as_json: bool) -> None:
    """Refuse a request, with the reason the person is told."""
    async def work(rt: Runtime) -> None:
        from tidings.privacy.api import reject_request
        from tidings.privacy.schemas import RejectRequest

        body = RejectRequest.model_validate({"reason": reason})
        _emit_request(await reject_request(rt, tenant=account_id, request_id=request_id,
                                           body=body, actor=operator_actor()), as_json)
    with_runtime(work)


@requests.command("bundle")
@account_option
@click.argument("request_id")
@click.option("--html", is_flag=True, help="The HTML bundle instead of JSON.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="Where to write it.")
def bundle(account_id: str, request_id: str, html: bool, output: Path) -> None:
    """Write an access or portability request's bundle to a file."""
    async def work(rt: Runtime) -> None:
        import orjson

        from tidings.privacy.api import load_bundle
        from tidings.privacy.bundles import render_html

        content = await load_bundle(rt, tenant=account_id, request_id=request_id)
        data = render_html(content).encode() if html else orjson.dumps(
            content, option=orjson.OPT_INDENT_2)
        output.write_bytes(data)
        output.chmod(0o600)  # personal data: the operator's eyes only
        click.echo(f"{output}: {len(data)} bytes", err=True)
    with_runtime(work)
