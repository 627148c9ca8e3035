"""query_sm from a client: the state of one of its messages, in SMPP terms."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tidings.connectors.smpp.link import Link
from tidings.connectors.smpp.pdu import CommandStatus, MessageState, QuerySm
from tidings.messaging.lifecycle import Status
from tidings.messaging.models import Message
from tidings.messaging.status_changes import load_states

if TYPE_CHECKING:
    from tidings.core.services import Services

MESSAGE_STATES = {
    Status.DELIVERED: MessageState.DELIVERED, Status.EXPIRED: MessageState.EXPIRED,
    Status.UNDELIVERED: MessageState.UNDELIVERABLE, Status.FAILED: MessageState.UNDELIVERABLE,
    Status.REJECTED: MessageState.REJECTED, Status.CANCELED: MessageState.DELETED,
    Status.NOT_ACCEPTED: MessageState.REJECTED,
}


def smpp_state(status: str) -> int:
    """Our status as an SMPP message_state (ENROUTE until it is final)."""
    return int(MESSAGE_STATES.get(Status(status), MessageState.ENROUTE))


def smpp_time(moment: datetime) -> str:
    """An SMPP absolute time ("YYMMDDhhmmss000+"), UTC."""
    return moment.astimezone(UTC).strftime("%y%m%d%H%M%S") + "000+"


async def query_state(rt: Services, tenant: str, link: Link, pdu: QuerySm) -> None:
    async with rt.db.core(tenant=tenant, write=False) as session:
        found = await load_states(session, (Message.id == pdu.message_id)
                                  & (Message.tenant_id == tenant))
    if not found:
        link.respond(pdu, CommandStatus.ESME_RQUERYFAIL)
        return
    state = found[0]
    final = smpp_state(state.status) != MessageState.ENROUTE
    link.respond(pdu, message_id=pdu.message_id, message_state=smpp_state(state.status),
                 final_date=smpp_time(state.updated_at) if final else "")
