"""``tidings consents``: an account's consent records, as the operator keeps them for it
(an opt-out that reached the operator, a client's list to load): the API's own functions,
acting as the operator."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tidings.cli.common import emit, fail, operator_actor, with_runtime

if TYPE_CHECKING:
    from tidings.consents.schemas import ConsentEventOut, ConsentHistoryOut, ConsentImportOut
    from tidings.runtime import Runtime

# As ``consents/rules.py`` and ``consents/schemas.py`` name them; here so that the help
# lists them without importing the domain.
_CHANNELS = ("sms", "whatsapp", "email", "viber", "rcs", "voice")
_PURPOSES = ("marketing", "transactional")
_MECHANISMS = ("opt_in", "opt_out", "soft_opt_in")
_SOURCES = ("web_form", "keyword", "api", "import")

account_option = click.option("--account", "account_id", required=True, help="Account id.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group("consents")
def consents() -> None:
    """Consent records: record, show and import people's consent to be messaged."""


@consents.command("record")
@account_option
@click.option("--number", help="The person's number, E.164 (every channel but email).")
@click.option("--email", help="The person's e-mail address (the email channel).")
@click.option("--channel", required=True, type=click.Choice(_CHANNELS))
@click.option("--purpose", required=True, type=click.Choice(_PURPOSES))
@click.option("--mechanism", required=True, type=click.Choice(_MECHANISMS))
@click.option("--source", required=True, type=click.Choice(_SOURCES))
@click.option("--evidence", required=True, help="Where the proof is (a form's id, a letter).")
@click.option("--text-version", help="The version of the consent text the person saw.")
@click.option("--text-sha256", help="SHA-256 of that text, 64 lower-case hex digits.")
@click.option("--captured-at", help="When, if not now: ISO 8601 with its offset.")
@json_option
def record(account_id: str, number: str | None, email: str | None, channel: str,
           purpose: str, mechanism: str, source: str, evidence: str,
           text_version: str | None, text_sha256: str | None, captured_at: str | None,
           as_json: bool) -> None:
    """Append a consent event of a person; nothing is ever changed or deleted."""
    fields = {"number": number, "email": email, "channel": channel, "purpose": purpose,
              "mechanism": mechanism, "source": source, "evidence_ref": evidence,
              "text_version": text_version, "text_sha256": text_sha256,
              "captured_at": captured_at}

    async def work(rt: Runtime) -> None:
        from tidings.consents.api import record_consent

        body = _body({name: value for name, value in fields.items() if value is not None})
        made = await record_consent(rt, tenant=account_id, body=body,
                                    actor=operator_actor())
        emit(made.model_dump(mode="json"), as_json=as_json, text=_event_line(made))
    with_runtime(work)


def _body(fields: dict[str, Any]) -> Any:
    """The API's body, or exit 1 naming each field it refuses."""
    from pydantic import ValidationError

    from tidings.consents.schemas import RecordConsent

    try:
        return RecordConsent.model_validate(fields)
    except ValidationError as invalid:
        fail("; ".join(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
                       for error in invalid.errors()) + " (validation_failed)")


@consents.command("show")
@account_option
@click.option("--number", help="The person's number, E.164.")
@click.option("--email", help="The person's e-mail address.")
@click.option("--channel", type=click.Choice(_CHANNELS), help="That channel's events only.")
@json_option
def show(account_id: str, number: str | None, email: str | None, channel: str | None,
         as_json: bool) -> None:
    """A person's consent events, oldest first, and the state in force."""
    async def work(rt: Runtime) -> None:
        from tidings.consents.api import consent_history
        from tidings.consents.rules import ConsentChannel

        found = await consent_history(
            rt, tenant=account_id, number=number, email=email,
            channel=None if channel is None else ConsentChannel(channel))
        emit(found.model_dump(mode="json"), as_json=as_json, text=_history_text(found))
    with_runtime(work)


@consents.command("import")
@account_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def import_(account_id: str, file: Path, as_json: bool) -> None:
    """Import FILE, a CSV of consent events (docs/consents.md): the good rows, each bad
    one reported by row; a file without a good row imports nothing and exits 1."""
    async def work(rt: Runtime) -> None:
        from tidings.consents.api import import_consents
        from tidings.web.errors import TidingsError

        try:
            done = await import_consents(rt, tenant=account_id, raw=file.read_bytes(),
                                         actor=operator_actor())
        except TidingsError as refused:
            for error in refused.extra.get("row_errors", []):
                click.echo(_row_line(error), err=True)
            raise
        emit(done.model_dump(mode="json"), as_json=as_json, text=_import_text(done))
    with_runtime(work)


def _event_line(event: ConsentEventOut) -> str:
    return (f"{event.id}  {event.captured_at:%Y-%m-%d %H:%M}  {event.channel:<9} "
            f"{event.purpose:<14} {event.mechanism:<12} {event.source:<9} "
            f"{event.evidence_ref or '(erased)'}")


def _history_text(found: ConsentHistoryOut) -> str:
    if not found.events:
        return "No consent events."
    states = [f"  {s.channel} {s.purpose}: {'IN FORCE' if s.in_force else 'not in force'} "
              f"({s.mechanism} since {s.since:%Y-%m-%d %H:%M})" for s in found.state]
    return "\n".join([*(_event_line(e) for e in found.events), "state:", *states])


def _row_line(error: dict[str, Any]) -> str:
    column = f" {error['column']}:" if error.get("column") else ""
    return f"row {error['row']}:{column} {error['detail']} ({error['code']})"


def _import_text(done: ConsentImportOut) -> str:
    lines = [f"imported {done.imported}, refused {done.refused}"]
    return "\n".join(lines + [_row_line(error.model_dump()) for error in done.errors])
