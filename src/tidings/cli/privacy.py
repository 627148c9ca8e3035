"""``tidings privacy``: data subject requests, legal holds and restrictions, as the
operator handles them for an account (processor mode: a request the operator received
is recorded in the account that controls the data, and its people are mailed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tidings.cli.common import emit, operator_actor, with_runtime
from tidings.cli.privacy_breaches import breaches
from tidings.cli.privacy_subprocessors import subprocessors

if TYPE_CHECKING:
    from tidings.privacy.schemas import RequestOut
    from tidings.runtime import Runtime

_TYPES = ("access", "rectification", "erasure", "restriction", "portability", "objection")


@click.group("privacy")
def privacy() -> None:
    """Data protection: requests, holds, retention, purges, breaches, sub-processors, ROPA, scan."""


privacy.add_command(breaches)
privacy.add_command(subprocessors)


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


@privacy.group("holds")
def holds() -> None:
    """Legal holds: a person's data kept whatever they ask."""


@holds.command("place")
@account_option
@click.option("--number", help="The person's number, E.164.")
@click.option("--email", help="The person's e-mail address.")
@click.option("--basis", required=True, help="Why the data is kept: a claim, an inquiry.")
@json_option
def place_hold(account_id: str, number: str | None, email: str | None, basis: str,
               as_json: bool) -> None:
    """Keep a person's data: an erasure request meets the hold and stops."""
    async def work(rt: Runtime) -> None:
        from tidings.privacy.api import place_hold as place
        from tidings.privacy.schemas import PlaceHold

        body = PlaceHold.model_validate({"subject": _subject(number, email), "basis": basis})
        hold = await place(rt, tenant=account_id, body=body, actor=operator_actor())
        emit(hold.model_dump(mode="json"), as_json=as_json, text=f"{hold.id}: {hold.basis}")
    with_runtime(work)


@holds.command("list")
@account_option
@json_option
def list_holds(account_id: str, as_json: bool) -> None:
    """The account's legal holds, released ones too."""
    async def work(rt: Runtime) -> None:
        from tidings.privacy.api import fetch_holds

        found = await fetch_holds(rt, tenant=account_id)
        emit([h.model_dump(mode="json") for h in found], as_json=as_json,
             text="\n".join(f"{h.id}  {'released' if h.released_at else 'in force':<9} "
                            f"{h.basis}" for h in found) or "No legal holds.")
    with_runtime(work)


@holds.command("release")
@account_option
@click.argument("hold_id")
def release_hold(account_id: str, hold_id: str) -> None:
    """Release a legal hold: the person's erasure can then go ahead."""
    async def work(rt: Runtime) -> None:
        from tidings.privacy.api import release_hold as release

        hold = await release(rt, tenant=account_id, hold_id=hold_id, actor=operator_actor())
        click.echo(f"{hold.id}: released")
    with_runtime(work)


@privacy.group("restrictions")
def restrictions() -> None:
    """People who restricted processing: nothing is sent to them."""


@restrictions.command("list")
@account_option
@json_option
def list_restrictions(account_id: str, as_json: bool) -> None:
    """The account's restrictions, lifted ones too."""
    async def work(rt: Runtime) -> None:
        from tidings.privacy.api import fetch_restrictions

        found = await fetch_restrictions(rt, tenant=account_id)
        emit([r.model_dump(mode="json") for r in found], as_json=as_json,
             text="\n".join(f"{r.id}  {'lifted' if r.lifted_at else 'in force':<8} "
                            f"{r.request_id or ''}" for r in found) or "No restrictions.")
    with_runtime(work)


@restrictions.command("lift")
@account_option
@click.argument("restriction_id")
def lift(account_id: str, restriction_id: str) -> None:
    """Lift a restriction; the account's privacy people are mailed to tell the person."""
    async def work(rt: Runtime) -> None:
        from tidings.privacy.api import lift_restriction

        lifted = await lift_restriction(rt, tenant=account_id, restriction_id=restriction_id,
                                        actor=operator_actor())
        click.echo(f"{lifted.id}: lifted")
    with_runtime(work)


@privacy.command("scan")
@click.option("--number", "numbers", multiple=True, help="A number to look for (E.164).")
@click.option("--email", "emails", multiple=True, help="An e-mail address to look for.")
@click.option("--text", "texts", multiple=True, help="A text to look for (8 characters+).")
@click.option("--path", "paths", multiple=True,
              type=click.Path(exists=True, path_type=Path),
              help="A file or folder to search too: logs, exports, a backup.")
@click.option("--account", "accounts", multiple=True,
              help="Reversible forms under this account's keys only (the same number "
                   "in another account is that account's own record).")
@json_option
def scan(numbers: tuple[str, ...], emails: tuple[str, ...], texts: tuple[str, ...],
         paths: tuple[Path, ...], accounts: tuple[str, ...], as_json: bool) -> None:
    """Look for a person in clear or reversible anywhere: every table, the database's
    files, and the paths given. Exits 1 on a find."""
    from tidings.privacy.scan import Canary

    try:
        canaries = [*(Canary.number(n) for n in numbers), *(Canary.email(e) for e in emails),
                    *(Canary.text(t) for t in texts)]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not canaries:
        raise click.UsageError("Name at least one --number, --email or --text.")

    async def work(rt: Runtime) -> Any:
        from tidings.privacy.scan import scan as run_scan

        return await run_scan(rt, canaries, paths=paths, accounts=accounts or None)
    report = with_runtime(work)
    findings = [vars(f) for f in report.findings]
    emit({"clean": report.clean, "rows": report.rows, "files": report.files,
          "findings": findings}, as_json=as_json,
         text="\n".join(f"FOUND {f['canary']}: {f['form']} in {f['store']} {f['where']}"
                        for f in findings)
         or f"clean: {report.rows} rows and {report.files} files searched")
    if not report.clean:
        raise SystemExit(1)


@privacy.group("retention")
def retention() -> None:
    """How long an account's messages keep their bodies and addresses."""


def _retention_text(out: Any) -> str:
    runs = "\n".join(f"  {r.started_at:%Y-%m-%d %H:%M}  {r.messages} messages anonymised, "
                     f"{r.keys_destroyed} keys destroyed" for r in out.runs)
    return (f"{out.message_body_days} days ({'chosen' if out.chosen else 'the default'}; "
            f"limits {out.min_days}..{out.max_days})" + (f"\n{runs}" if runs else ""))


@retention.command("show")
@account_option
@json_option
def show_retention(account_id: str, as_json: bool) -> None:
    """The period in force, the limits, the last runs."""
    async def work(rt: Runtime) -> None:
        from tidings.privacy.retention_api import retention_of

        out = await retention_of(rt, tenant=account_id)
        emit(out.model_dump(mode="json"), as_json=as_json, text=_retention_text(out))
    with_runtime(work)


@retention.command("set")
@account_option
@click.option("--days", type=int, help="Days a message keeps its body and addresses.")
@click.option("--default", "use_default", is_flag=True, help="Back to the platform default.")
@json_option
def set_retention_command(account_id: str, days: int | None, use_default: bool,
                          as_json: bool) -> None:
    """Choose the account's period, within the platform's limits."""
    if (days is None) == (not use_default):
        raise click.UsageError("Give --days N or --default.")

    async def work(rt: Runtime) -> None:
        from tidings.privacy.retention_api import set_retention
        from tidings.privacy.schemas import SetRetention

        body = SetRetention.model_validate({"message_body_days": days})
        out = await set_retention(rt, tenant=account_id, body=body, actor=operator_actor())
        emit(out.model_dump(mode="json"), as_json=as_json, text=_retention_text(out))
    with_runtime(work)


@retention.command("run")
@account_option
@json_option
def run_retention(account_id: str, as_json: bool) -> None:
    """Apply the account's retention now (the workers do it daily) and report."""
    async def work(rt: Runtime) -> None:
        from tidings.accounts.service import get_account
        from tidings.privacy.retention import apply_retention

        async with rt.db.transaction(tenant=account_id, write=False) as session:
            await get_account(session, account_id=account_id)
        done = await apply_retention(rt, tenant=account_id, actor=operator_actor())
        emit({"id": done.id, "cutoff": done.cutoff.isoformat(), "messages": done.messages,
              "keys_destroyed": done.keys_destroyed}, as_json=as_json,
             text=f"{done.messages} messages anonymised (created before "
                  f"{done.cutoff:%Y-%m-%d %H:%M}), {done.keys_destroyed} keys destroyed")
    with_runtime(work)


@privacy.group("purges")
def purges() -> None:
    """Terminated accounts' purges and their deletion certificates."""


@purges.command("show")
@account_option
@json_option
def show_purge(account_id: str, as_json: bool) -> None:
    """When the terminated account's data goes, or went."""
    async def work(rt: Runtime) -> None:
        from tidings.privacy.purges_api import purge_of, purge_out

        out = purge_out(await purge_of(rt, account_id=account_id))
        state = (f"purged {out.purged_at:%Y-%m-%d}, certificate {out.certificate_id}"
                 if out.purged_at else f"due {out.purge_due_at:%Y-%m-%d}")
        emit(out.model_dump(mode="json"), as_json=as_json, text=f"{out.account_id}: {state}")
    with_runtime(work)


@purges.command("now")
@account_option
@json_option
def purge_now(account_id: str, as_json: bool) -> None:
    """Purge a terminated account now, as its client asked: every row and key of it and
    of the accounts below it; the certificate goes to its owners."""
    async def work(rt: Runtime) -> None:
        from tidings.privacy.purges_api import purge_out
        from tidings.privacy.termination import request_purge

        out = purge_out(await request_purge(rt, tenant=account_id, actor=operator_actor()))
        emit(out.model_dump(mode="json"), as_json=as_json,
             text=f"{out.account_id}: purged, certificate {out.certificate_id}")
    with_runtime(work)


@purges.command("certificate")
@account_option
@click.option("--pdf", is_flag=True, help="The PDF instead of JSON.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="Where to write it.")
def certificate(account_id: str, pdf: bool, output: Path) -> None:
    """Write the deletion certificate of a purged account to a file."""
    async def work(rt: Runtime) -> None:
        import orjson

        from tidings.privacy.purges_api import purge_of
        from tidings.privacy.termination import certificate_pdf
        from tidings.web.errors import Conflict

        purge = await purge_of(rt, account_id=account_id)
        if purge.certificate is None:
            raise Conflict("The account is not purged yet.", code="not_purged_yet")
        output.write_bytes(certificate_pdf(purge.certificate) if pdf else orjson.dumps(
            purge.certificate, option=orjson.OPT_INDENT_2))
        click.echo(f"{output}: certificate {purge.certificate_id}", err=True)
    with_runtime(work)


@privacy.command("ropa")
@account_option
@click.option("--pdf", is_flag=True, help="The PDF instead of JSON.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write it to this file (JSON to stdout without).")
def ropa(account_id: str, pdf: bool, output: Path | None) -> None:
    """The account's record of processing activities (GDPR Art. 30)."""
    if pdf and output is None:
        raise click.UsageError("A PDF needs --output FILE.")

    async def work(rt: Runtime) -> None:
        import orjson

        from tidings.privacy.ropa import record_of_processing, ropa_pdf

        record = await record_of_processing(rt, tenant=account_id, now=rt.clock.now())
        data = ropa_pdf(record) if pdf else orjson.dumps(record, option=orjson.OPT_INDENT_2)
        if output is None:
            click.echo(data.decode())
        else:
            output.write_bytes(data)
            click.echo(f"{output}: {len(data)} bytes", err=True)
    with_runtime(work)
