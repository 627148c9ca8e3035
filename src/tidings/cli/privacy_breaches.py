"""``tidings privacy breaches``: the operator's breach register (BRE-1..3), as the
operator API has it: record a breach, append what is learnt, estimate its impact per
account, notify the affected clients, close it. A breach's fields come as a JSON
object in a file (``--file``, ``-`` for standard input), the API's body.
"""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any

import click

from tidings.cli.common import emit, fail, operator_actor, validated, with_runtime

if TYPE_CHECKING:

    from tidings.breaches.schemas import BreachDetail, BreachImpactOut, BreachOut
    from tidings.runtime import Runtime

_STATUSES = ("open", "notified", "closed")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
file_option = click.option(
    "--file", "source", type=click.File("r"),
    help="A JSON object with the breach's fields (nature, nature_description, "
         "categories_of_subjects, approx_subjects, …, scope), as the API takes them; "
         "- reads standard input.")


@click.group("breaches")
def breaches() -> None:
    """The breach register: record, update, estimate, notify and close breaches."""


def _fields(source: IO[str] | None) -> dict[str, Any]:
    if source is None:
        return {}
    try:
        data = json.load(source)
    except json.JSONDecodeError as exc:
        fail(f"{source.name}: not JSON: {exc}")
    if not isinstance(data, dict):
        fail(f"{source.name}: a JSON object is expected")
    return data



def _clock(out: BreachOut) -> str:
    if out.status == "closed":
        return "closed"
    if out.status == "notified":
        late = out.notified_at is not None and out.notified_at >= out.due_at
        return f"notified (version {out.notified_version}){' late' if late else ''}"
    if out.overdue:
        return "OVERDUE"
    left = max(out.due_in or 0, 0)
    return f"due in {left // 3600}h{left % 3600 // 60:02d}m"


def _line(out: BreachOut) -> str:
    escalated = " escalated" if out.escalated_at and out.status == "open" else ""
    return (f"{out.id}  {out.status:<8}  aware {out.aware_at:%Y-%m-%d %H:%M}  "
            f"due {out.due_at:%Y-%m-%d %H:%M}  {_clock(out)}{escalated}")


def _detail(out: BreachDetail) -> str:
    current = out.current
    lines = [_line(out),
             f"  version {current.version} of {current.created_at:%Y-%m-%d %H:%M} by "
             f"{current.created_by}",
             f"  nature: {current.nature or '-'}: {current.nature_description or '-'}",
             f"  subjects: {', '.join(current.categories_of_subjects) or '-'}, about "
             f"{current.approx_subjects or '-'}"
             + (f" ({current.approx_subjects_reason})" if current.approx_subjects_reason
                else ""),
             f"  records: {', '.join(current.categories_of_records) or '-'}, about "
             f"{current.approx_records or '-'}",
             f"  consequences: {current.likely_consequences or '-'}",
             f"  measures: {current.measures_taken or '-'}",
             f"  contact: {current.contact or '-'}",
             f"  scope: {', '.join(current.scope.tenants) or '-'}; "
             f"{current.scope.window_start or '-'} to {current.scope.window_end or '-'}; "
             f"{', '.join(current.scope.categories) or '-'}"]
    if out.missing:
        lines.append(f"  missing before it can be notified: {', '.join(out.missing)}")
    for notice in out.notices:
        proof = notice.mail_id or f"not sent: {notice.undeliverable}"
        lines.append(f"  notice {notice.id} v{notice.version} to {notice.tenant_id} at "
                     f"{notice.queued_at:%Y-%m-%d %H:%M}: {proof}")
    if out.close_reason:
        lines.append(f"  closed: {out.close_reason}")
    return "\n".join(lines)


def _emit_detail(out: BreachDetail, as_json: bool) -> None:
    emit(out.model_dump(mode="json"), as_json=as_json, text=_detail(out))


@breaches.command("create")
@click.option("--detected-at", help="When it was first seen (ISO 8601, with a zone).")
@click.option("--aware-at", help="When the operator became aware of it: the 48 hours "
                                 "run from here (ISO 8601, with a zone).")
@file_option
@json_option
def create(detected_at: str | None, aware_at: str | None, source: IO[str] | None,
           as_json: bool) -> None:
    """Record a breach; its first version may be incomplete."""
    data = _fields(source)
    data.update({name: value for name, value in (("detected_at", detected_at),
                                                  ("aware_at", aware_at)) if value})

    from tidings.breaches.schemas import CreateBreach

    body = validated(CreateBreach, data)

    async def work(rt: Runtime) -> None:
        from tidings.breaches.api import create_breach

        _emit_detail(await create_breach(rt, body, actor=operator_actor()), as_json)
    with_runtime(work)


@breaches.command("list")
@click.option("--status", type=click.Choice(_STATUSES))
@click.option("--overdue", is_flag=True, help="Only those past 48 hours, not notified.")
@json_option
def list_(status: str | None, overdue: bool, as_json: bool) -> None:
    """The register: open breaches first, the soonest due first."""
    async def work(rt: Runtime) -> None:
        from tidings.breaches.api import fetch_breaches

        found = await fetch_breaches(rt, status=status, overdue=True if overdue else None)
        emit([b.model_dump(mode="json") for b in found], as_json=as_json,
             text="\n".join(_line(b) for b in found) or "No breaches.")
    with_runtime(work)


@breaches.command("show")
@click.argument("breach_id")
@json_option
def show(breach_id: str, as_json: bool) -> None:
    """A breach: its clock, current version and notices (--json: every version)."""
    async def work(rt: Runtime) -> None:
        from tidings.breaches.api import fetch_breach

        _emit_detail(await fetch_breach(rt, breach_id), as_json)
    with_runtime(work)


@breaches.command("update")
@click.argument("breach_id")
@file_option
@json_option
def update(breach_id: str, source: IO[str] | None, as_json: bool) -> None:
    """Append a version: the fields given replace the current ones."""
    from tidings.breaches.schemas import BreachVersionIn

    body = validated(BreachVersionIn, _fields(source))

    async def work(rt: Runtime) -> None:
        from tidings.breaches.api import append_version

        _emit_detail(await append_version(rt, breach_id, body, actor=operator_actor()),
                     as_json)
    with_runtime(work)


def _impact(out: BreachImpactOut) -> str:
    lines = [f"{out.breach_id} version {out.version}: {out.window_start:%Y-%m-%d %H:%M} to "
             f"{out.window_end:%Y-%m-%d %H:%M}, {', '.join(out.categories)}"]
    lines += [f"  {a.tenant_id} (client {a.controller_id}): {a.subjects} people, "
              f"{a.records} records" for a in out.accounts]
    lines.append(f"  in all: {out.subjects} people, {out.records} records")
    return "\n".join(lines)


@breaches.command("estimate")
@click.argument("breach_id")
@json_option
def estimate(breach_id: str, as_json: bool) -> None:
    """People and records per account in the current scope."""
    async def work(rt: Runtime) -> None:
        from tidings.breaches.api import estimate as estimate_impact

        out = await estimate_impact(rt, breach_id)
        emit(out.model_dump(mode="json"), as_json=as_json, text=_impact(out))
    with_runtime(work)


@breaches.command("notify")
@click.argument("breach_id")
@json_option
def notify(breach_id: str, as_json: bool) -> None:
    """Mail the notice to every affected client's owners (refused while a field of the
    notice is missing)."""
    async def work(rt: Runtime) -> None:
        from tidings.breaches.api import notify as notify_clients

        _emit_detail(await notify_clients(rt, breach_id, actor=operator_actor()), as_json)
    with_runtime(work)


@breaches.command("close")
@click.argument("breach_id")
@click.option("--reason", required=True, help="Why it needs nothing more.")
@json_option
def close(breach_id: str, reason: str, as_json: bool) -> None:
    """Close a breach, notified or not; it stays in the register."""
    from tidings.breaches.schemas import CloseBreach

    body = validated(CloseBreach, {"reason": reason})

    async def work(rt: Runtime) -> None:
        from tidings.breaches.api import close as close_breach

        _emit_detail(await close_breach(rt, breach_id, body, actor=operator_actor()),
                     as_json)
    with_runtime(work)
