"""``tidings policies``: publish a new version of the privacy policy, the DPA or the
terms (every client is mailed a notice and has a month to object), list the versions
with the clients' answers counted, show one with each account's answer, and record how
an objection was resolved. The same functions as ``/v1/operator/policies``.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

import click

from tidings.cli.common import emit, fail, operator_actor, validated, with_runtime

if TYPE_CHECKING:

    from tidings.policies.schemas import PolicyVersionDetail, PolicyVersionOut
    from tidings.runtime import Runtime

_KINDS = ("privacy_policy", "dpa", "terms")
_STATUSES = ("upcoming", "in_force", "superseded")
_OUTCOMES = ("withdrawn", "terminating", "upheld")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group("policies")
def policies() -> None:
    """Policy versions: publish a change, clients notified, their objections."""



def _read(source: IO[str]) -> str:
    try:
        return source.read()
    except UnicodeDecodeError:
        fail(f"{source.name}: not UTF-8 text")


def _line(out: PolicyVersionOut) -> str:
    c = out.counts
    busy = " (notifying)" if out.notifying else ""
    return (f"{out.id}  {out.kind:<14}  {out.version:<12}  {out.status:<10}  "
            f"effective {out.effective_at:%Y-%m-%d}  objections until "
            f"{out.objection_deadline:%Y-%m-%d %H:%M}  notified {c.notified}"
            f" (undeliverable {c.undeliverable}), pending {c.pending}, objected {c.objected}"
            f" ({c.open_objections} open), accepted {c.accepted}, deemed accepted "
            f"{c.deemed_accepted}{busy}")


def _detail(out: PolicyVersionDetail) -> str:
    lines = [_line(out), f"  {out.title}", f"  published {out.published_at:%Y-%m-%d %H:%M} "
             f"by {out.published_by}; sha256 {out.sha256}", f"  {out.url}",
             "  what changes: " + out.summary.replace("\n", "\n    ")]
    for r in out.responses:
        proof = ", ".join(r.mail_ids) or f"not sent: {r.undeliverable}"
        lines.append(f"  {r.account_id} ({r.account_name}): {r.state}; {proof}")
        if r.objection_reason:
            lines.append("    objection: " + r.objection_reason.replace("\n", " "))
        if r.resolution:
            note = f": {r.resolution.note}" if r.resolution.note else ""
            lines.append(f"    resolved {r.resolution.outcome}{note}")
    return "\n".join(lines)


def _emit_detail(out: PolicyVersionDetail, as_json: bool) -> None:
    emit(out.model_dump(mode="json"), as_json=as_json, text=_detail(out))


@policies.command("publish")
@click.option("--kind", required=True, type=click.Choice(_KINDS))
@click.option("--version", "label", required=True, help="The version's label (2027-01).")
@click.option("--title", required=True, help="One line: \"Privacy Policy\".")
@click.option("--summary", required=True, help="What changes, in plain text: the notice.")
@click.option("--text-file", "text_file", required=True, type=click.File("r"),
              help="The whole new version (Markdown or plain text); - reads standard input.")
@click.option("--effective-at", help="When it takes effect (ISO 8601, with a zone); by "
                                     "default the soonest allowed, a month and thirty days "
                                     "on.")
@json_option
def publish(kind: str, label: str, title: str, summary: str, text_file: IO[str],
            effective_at: str | None, as_json: bool) -> None:
    """Publish a version: every client account is mailed a notice."""
    from tidings.policies.schemas import PublishPolicy

    data: dict[str, Any] = {"kind": kind, "version": label, "title": title,
                            "summary": summary, "text": _read(text_file)}
    if effective_at:
        data["effective_at"] = effective_at
    body = validated(PublishPolicy, data)

    async def work(rt: Runtime) -> None:
        from tidings.policies.api import publish as publish_version

        _emit_detail(await publish_version(rt, body, actor=operator_actor()), as_json)
    with_runtime(work)


@policies.command("list")
@click.option("--kind", type=click.Choice(_KINDS))
@click.option("--status", type=click.Choice(_STATUSES))
@json_option
def list_(kind: str | None, status: str | None, as_json: bool) -> None:
    """The versions, the newest first, with the clients' answers counted."""
    async def work(rt: Runtime) -> None:
        from tidings.policies.api import fetch_versions

        found = await fetch_versions(rt, kind=kind, status=status)
        emit([v.model_dump(mode="json") for v in found], as_json=as_json,
             text="\n".join(_line(v) for v in found) or "No policy versions.")
    with_runtime(work)


@policies.command("show")
@click.argument("version_id")
@json_option
def show(version_id: str, as_json: bool) -> None:
    """A version and each account's answer (--json: with its text)."""
    async def work(rt: Runtime) -> None:
        from tidings.policies.api import fetch_version

        _emit_detail(await fetch_version(rt, version_id), as_json)
    with_runtime(work)


@policies.command("resolve")
@click.argument("version_id")
@click.argument("account_id")
@click.option("--outcome", required=True, type=click.Choice(_OUTCOMES))
@click.option("--note", help="What was agreed; the client sees it.")
@json_option
def resolve(version_id: str, account_id: str, outcome: str, note: str | None,
            as_json: bool) -> None:
    """Record how an account's objection was resolved."""
    from tidings.policies.schemas import ResolveObjection

    body = validated(ResolveObjection, {"outcome": outcome, "note": note})

    async def work(rt: Runtime) -> None:
        from tidings.policies.api import resolve as resolve_objection

        out = await resolve_objection(rt, version_id, account_id, body,
                                      actor=operator_actor())
        emit(out.model_dump(mode="json"), as_json=as_json,
             text=f"{out.account_id}: {out.state}, resolved {outcome}")
    with_runtime(work)
