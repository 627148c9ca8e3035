"""``tidings numbers``: the operator gives numbers and addresses to accounts."""

from __future__ import annotations

import click

from tidings.cli.common import emit, operator_actor, with_runtime
from tidings.numbers.api import assign_number
from tidings.runtime import Runtime


@click.group("numbers")
def numbers() -> None:
    """Assign numbers and email addresses to accounts."""


@numbers.command("assign")
@click.option("--account", "account_id", required=True, help="Account id.")
@click.option("--number", required=True,
              help="A number in E.164, or an email address for inbound mail.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def assign(account_id: str, number: str, as_json: bool) -> None:
    """Give a number to an account, without the claim a client would make."""
    async def work(rt: Runtime) -> None:
        made = await assign_number(rt, account_id=account_id, raw_number=number,
                                   actor=operator_actor())
        emit(made.model_dump(mode="json"), as_json=as_json,
             text=f"{made.id}: {made.number} -> {made.account_id}")
    with_runtime(work)
