"""``tidings accounts verifications|verify|reject``: the operator decides who is served."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from tidings.cli.common import emit, operator_actor, with_runtime
from tidings.runtime import Runtime
from tidings.signup.verification import (
    Outcome,
    VerificationView,
    decide,
    pending_verifications,
)


def _data(found: VerificationView) -> dict[str, Any]:
    data = asdict(found)
    for moment in ("submitted_at", "decided_at"):
        data[moment] = data[moment].isoformat() if data[moment] else None
    return data


def _line(found: VerificationView) -> str:
    details = found.details
    told = (f"{details.legal_name} ({details.country}, {details.registration_number}); "
            f"contact {details.contact_name} <{details.contact_email}>"
            f"{' ' + details.contact_phone if details.contact_phone else ''}; "
            f"use: {details.intended_use}") if details else "no details"
    confirmed = "address confirmed" if found.email_confirmed else "address NOT confirmed"
    return f"{found.account_id}  {found.account_status:<20} {confirmed}; {told}"


@click.command("verifications")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def verifications(as_json: bool) -> None:
    """List the verifications that wait for a decision, oldest first."""
    async def work(rt: Runtime) -> None:
        found = await pending_verifications(rt)
        emit([_data(f) for f in found], as_json=as_json,
             text="\n".join(_line(f) for f in found) or "no verifications waiting")
    with_runtime(work)


@click.command("verify")
@click.argument("account_id")
@click.option("--trial", "outcome", flag_value=Outcome.TRIAL.value,
              help="A free trial: verified numbers only, up to TIDINGS_TRIAL_MESSAGE_ALLOWANCE.")
@click.option("--active", "outcome", flag_value=Outcome.ACTIVE.value,
              help="Active: sends to anyone (a trial may be made active too).")
@click.option("--note", default=None, help="A note for the client, in the mail.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def verify(account_id: str, outcome: str | None, note: str | None, as_json: bool) -> None:
    """Verify a pending account as a trial or active; its owners are e-mailed."""
    if outcome is None:
        raise click.UsageError("Say --trial or --active.")

    async def work(rt: Runtime) -> None:
        found = await decide(rt, account_id=account_id, outcome=Outcome(outcome), note=note,
                             actor=operator_actor())
        emit(_data(found), as_json=as_json, text=f"{account_id}: {found.account_status}")
    with_runtime(work)


@click.command("reject")
@click.argument("account_id")
@click.option("--reason", required=True, help="Why, for the client to act on (mailed).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def reject(account_id: str, reason: str, as_json: bool) -> None:
    """Reject a pending account's verification; its owners are e-mailed the reason."""
    async def work(rt: Runtime) -> None:
        found = await decide(rt, account_id=account_id, outcome=Outcome.REJECTED,
                             note=reason, actor=operator_actor())
        emit(_data(found), as_json=as_json, text=f"{account_id}: verification rejected")
    with_runtime(work)
