"""``tidings privacy subprocessors``: the sub-processor register (SUB-1, SUB-2), as the
operator API has it: record an entry, notify every client (in effect thirty days or
more later), see each client's notice and objection, resolve an objection, retire an
entry. Connectors name their company with ``tidings connectors set-subprocessor``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from tidings.cli.common import emit, operator_actor, validated, with_runtime

if TYPE_CHECKING:

    from tidings.runtime import Runtime
    from tidings.subprocessors.schemas import OperatorSubprocessorOut, SubprocessorNoticeOut

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
_TRANSFERS = ("none", "adequacy", "sccs", "bcrs", "derogation")


@click.group("subprocessors")
def subprocessors() -> None:
    """The sub-processor register: record, notify clients, objections, retire."""



def _line(out: OperatorSubprocessorOut) -> str:
    when = f"from {out.effective_at:%Y-%m-%d %H:%M}" if out.effective_at else "not notified"
    objections = (f", {out.objections_open} open objection(s) of {out.objections}"
                  if out.objections else "")
    return (f"{out.id}  {out.status:<8}  {out.legal_name}  {','.join(out.countries)}  "
            f"{when}  {out.notices} client(s) told{objections}")


def _detail(out: OperatorSubprocessorOut) -> str:
    return "\n".join([
        _line(out), f"  purpose: {out.purpose}", f"  data: {', '.join(out.data_categories)}",
        f"  transfer: {out.transfer_mechanism}", f"  security: {out.security_summary}",
        f"  connectors: {', '.join(out.connectors) or '-'}"])


def _emit(out: OperatorSubprocessorOut, as_json: bool) -> None:
    emit(out.model_dump(mode="json"), as_json=as_json, text=_detail(out))


@subprocessors.command("add")
@click.option("--legal-name", required=True)
@click.option("--country", "countries", multiple=True, required=True,
              help="ISO 3166-1 alpha-2 code where it processes data; repeat for each.")
@click.option("--purpose", required=True, help="What it does for the platform.")
@click.option("--category", "data_categories", multiple=True, required=True,
              help="A personal data category it processes (fideslang: "
                   "user.contact.phone_number, …); repeat for each.")
@click.option("--transfer", "transfer_mechanism", type=click.Choice(_TRANSFERS),
              required=True, help="The safeguard of a transfer abroad.")
@click.option("--security", "security_summary", required=True,
              help="Its technical and organisational measures, in short.")
@json_option
def add(as_json: bool, **fields: Any) -> None:
    """Record a sub-processor, proposed: nobody is told and nothing uses it yet."""
    from tidings.subprocessors.schemas import CreateSubprocessor

    body = validated(CreateSubprocessor, {**fields, "countries": list(fields["countries"]),
                                           "data_categories": list(fields["data_categories"])})

    async def work(rt: Runtime) -> None:
        from tidings.subprocessors.api import record_entry

        _emit(await record_entry(rt, body, operator_actor()), as_json)
    with_runtime(work)


@subprocessors.command("list")
@json_option
def list_(as_json: bool) -> None:
    """The register, with each entry's status now."""
    async def work(rt: Runtime) -> None:
        from tidings.subprocessors.api import register_entries

        found = await register_entries(rt)
        emit([e.model_dump(mode="json") for e in found], as_json=as_json,
             text="\n".join(_line(e) for e in found) or "No sub-processors.")
    with_runtime(work)


@subprocessors.command("show")
@click.argument("sub_id")
@json_option
def show(sub_id: str, as_json: bool) -> None:
    """One entry."""
    async def work(rt: Runtime) -> None:
        from tidings.subprocessors.api import register_entry

        _emit(await register_entry(rt, sub_id), as_json)
    with_runtime(work)


@subprocessors.command("notify")
@click.argument("sub_id")
@click.option("--effective-at", required=True,
              help="When it may be used (ISO 8601 with a zone): 30 days from now or later.")
@json_option
def notify(sub_id: str, effective_at: str, as_json: bool) -> None:
    """Tell every client; it applies from --effective-at to those that do not object."""
    from tidings.subprocessors.schemas import NotifySubprocessor

    body = validated(NotifySubprocessor, {"effective_at": effective_at})

    async def work(rt: Runtime) -> None:
        from tidings.subprocessors.api import notify_entry

        _emit(await notify_entry(rt, sub_id, body.effective_at), as_json)
    with_runtime(work)


@subprocessors.command("retire")
@click.argument("sub_id")
@json_option
def retire(sub_id: str, as_json: bool) -> None:
    """Stop using it: its connectors carry nothing more."""
    async def work(rt: Runtime) -> None:
        from tidings.subprocessors.api import retire_entry

        _emit(await retire_entry(rt, sub_id), as_json)
    with_runtime(work)


def _notice_line(notice: SubprocessorNoticeOut) -> str:
    proof = ",".join(notice.mail_ids) or f"not sent: {notice.undeliverable}"
    line = (f"{notice.account_id}  {notice.account_name}  told {_when(notice.notified_at)}  "
            f"effective {_when(notice.effective_at)}  {proof}")
    if notice.objected_at:
        line += (f"\n  objected {_when(notice.objected_at)} by {notice.objected_by}: "
                 f"{notice.objection_reason}")
        line += (f"\n  resolved {notice.resolution} by {notice.resolved_by}: "
                 f"{notice.resolution_note}" if notice.resolution else "\n  open")
    return line


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M}"


@subprocessors.command("notices")
@click.argument("sub_id")
@json_option
def notices(sub_id: str, as_json: bool) -> None:
    """Each client told, with the proof, and its objection: objections first."""
    async def work(rt: Runtime) -> None:
        from tidings.subprocessors.api import entry_notices

        found = await entry_notices(rt, sub_id)
        emit([n.model_dump(mode="json") for n in found], as_json=as_json,
             text="\n".join(_notice_line(n) for n in found) or "No client told yet.")
    with_runtime(work)


@subprocessors.command("resolve")
@click.argument("sub_id")
@click.option("--account", "account_id", required=True, help="The client that objected.")
@click.option("--outcome", type=click.Choice(["upheld", "withdrawn", "terminating"]),
              required=True, help="upheld and terminating keep the client off it.")
@click.option("--note", required=True, help="What was agreed, for the record.")
@json_option
def resolve(sub_id: str, account_id: str, outcome: str, note: str, as_json: bool) -> None:
    """Resolve a client's objection; its owners are mailed the outcome."""
    from tidings.subprocessors.schemas import ResolutionIn

    body = validated(ResolutionIn, {"outcome": outcome, "note": note})

    async def work(rt: Runtime) -> None:
        from tidings.subprocessors.api import resolve_objection

        out = await resolve_objection(rt, sub_id, account_id, body, operator_actor())
        emit(out.model_dump(mode="json"), as_json=as_json, text=_notice_line(out))
    with_runtime(work)
