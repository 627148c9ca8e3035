"""``tidings sandbox``: simulate what a carrier would send."""

from __future__ import annotations

import click

from tidings.cli.common import emit, operator_actor, with_runtime
from tidings.messaging.inbound import receive_inbound
from tidings.runtime import Runtime


@click.group("sandbox")
def sandbox() -> None:
    """Simulate carrier traffic."""


@sandbox.command("inbound")
@click.option("--from", "sender", required=True, help="The sender's number.")
@click.option("--to", "to", required=True, help="A number an account owns.")
@click.option("--body", required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inbound(sender: str, to: str, body: str, as_json: bool) -> None:
    """Deliver an inbound SMS to the account that owns --to."""
    async def work(rt: Runtime) -> None:
        created = await receive_inbound(rt, sender=sender, to=to, body=body, channel="sms",
                                        actor=operator_actor())
        data = {"id": created.row["id"], "account_id": created.row["tenant_id"],
                "status": created.row["status"]}
        emit(data, as_json=as_json, text=f"{data['id']} received by {data['account_id']}")
    with_runtime(work)
