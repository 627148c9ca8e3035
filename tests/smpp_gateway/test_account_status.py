"""An account's status holds over SMPP for its whole subtree: a suspended or terminated
account, or one below a suspended or terminated parent, can neither bind nor stay bound."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import make_tenant
from tests.smpp_gateway.test_gateway import bind, credential, until
from tidings.accounts.models import Account, AccountStatus
from tidings.connectors.smpp.pdu import CommandStatus
from tidings.core.clock import FakeClock
from tidings.runtime import Runtime
from tidings.smpp_gateway.gateway import SmppGateway
from tidings.storage.db import SYSTEM


@pytest.fixture
async def quick_gateway(rt: Runtime) -> AsyncIterator[tuple[SmppGateway, int]]:
    """A gateway that looks at account statuses every 50 ms instead of every 2 s."""
    rt.smpp_gateway = SmppGateway(rt, status_seconds=0.05)
    port = await rt.smpp_gateway.start("127.0.0.1", 0)
    yield rt.smpp_gateway, port
    await rt.smpp_gateway.stop()
    rt.smpp_gateway = None


async def set_status(rt: Runtime, account_id: str, status: AccountStatus) -> None:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        account = await session.get(Account, account_id)
        assert account is not None
        account.status = status.value


@pytest.mark.parametrize("held", [AccountStatus.SUSPENDED, AccountStatus.TERMINATED])
async def test_a_sub_account_below_a_held_parent_cannot_bind(
        rt: Runtime, clock: FakeClock, quick_gateway: tuple[SmppGateway, int],
        held: AccountStatus) -> None:
    parent = await make_tenant(rt, "Parent", status=held)
    child = await make_tenant(rt, "Child", parent=parent.id)
    grandchild = await make_tenant(rt, "Grandchild", parent=child.id)
    system_id, password = await credential(rt, grandchild, clock)
    client, runner = await bind(quick_gateway[1], system_id, password)
    assert client.link.bound_as is None
    await client.link.unbind()  # close our side: refused, the socket is of no use
    await runner


@pytest.mark.parametrize("held", [AccountStatus.SUSPENDED, AccountStatus.TERMINATED])
async def test_open_binds_of_a_subtree_are_unbound_when_its_parent_is_held(
        rt: Runtime, clock: FakeClock, quick_gateway: tuple[SmppGateway, int],
        held: AccountStatus) -> None:
    parent = await make_tenant(rt, "Parent")
    child = await make_tenant(rt, "Child", parent=parent.id)
    bystander = await make_tenant(rt, "Bystander")
    child_client, child_runner = await bind(quick_gateway[1], *await credential(rt, child, clock))
    other, other_runner = await bind(quick_gateway[1], *await credential(rt, bystander, clock))
    assert (await child_client.submit()).command_status == CommandStatus.ESME_ROK

    await set_status(rt, parent.id, held)
    await until(lambda: child_client.link.is_closed, "the child's bind is closed")
    await child_runner
    # Another account's bind is untouched and still sends.
    assert not other.link.is_closed
    assert (await other.submit()).command_status == CommandStatus.ESME_ROK
    await other.link.unbind()
    await other_runner
