"""Inbound messages: find the account that owns the number, store, notify it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import select

from tidings.accounts.models import Account, AccountStatus
from tidings.accounts.service import ancestry, below, effective_status
from tidings.audit.service import Actor
from tidings.connectors.base import InboundMessage
from tidings.connectors.encoding import segment
from tidings.core.logs import get_logger
from tidings.core.services import Services
from tidings.jobs.outbox import enqueue_rows, job_row
from tidings.messaging.addresses import (
    AddressError,
    normalize_e164,
    normalize_email,
    normalize_sender,
)
from tidings.messaging.drafts import UNSEGMENTED
from tidings.messaging.models import Message
from tidings.messaging.service import (
    Created,
    SendContext,
    do_receive_inbound,
)
from tidings.messaging.status_changes import SMPP_DELIVER_JOB
from tidings.numbers.service import Owner, number_index, owner_of
from tidings.privacy.subjects import subjects_for
from tidings.smpp_gateway.service import has_active_credential
from tidings.storage.db import SYSTEM
from tidings.web.errors import Forbidden, InvalidRequest, NotFound, TidingsError
from tidings.webhooks.service import DELIVER_JOB
from tidings.webhooks.subscriptions import Subscription
from tidings.whatsapp.service import touch_window

log = get_logger("tidings.inbound")
_WHATSAPP_NUMBER = re.compile(r"\+[1-9][0-9]{1,14}")


async def take_inbound(rt: Services, connector: str,
                       messages: Sequence[InboundMessage]) -> list[bool]:
    """The connectors' inbound sink. A message no account can take (its number is
    nobody's, or unreadable) is taken and dropped with a log line: the carrier
    would otherwise deliver it again forever."""
    actor = Actor("system", f"connector:{connector}")
    for message in messages:
        if message.carrier_message_id and await _seen(rt, connector, message.carrier_message_id):
            continue  # the carrier delivered it again: it is stored already
        try:
            await receive_inbound(rt, sender=message.sender, to=message.to, body=message.body,
                                  channel=message.channel, actor=actor,
                                  carrier=(connector, message.carrier_message_id))
        except TidingsError as exc:
            log.warning("inbound_dropped", connector=connector, code=exc.code)
    return [True] * len(messages)


def _our_number(to: str, channel: str) -> str:
    """The number a message came to. A WhatsApp connector names its own number, the one
    its phone-number id belongs to (``+<digits>``): it is ours even where libphonenumber
    knows no such number (Meta's +1 555 test numbers)."""
    try:
        return normalize_e164(to)
    except AddressError:
        if channel == "whatsapp" and _WHATSAPP_NUMBER.fullmatch(to):
            return to
        raise


def _form(channel: str, body: str) -> tuple[str, int]:
    """(encoding, segments): SMS has both; other channels carry text as it is."""
    if channel != "sms":
        return UNSEGMENTED, 1
    segmentation = segment(body)
    return segmentation.encoding, segmentation.num_segments


async def _seen(rt: Services, connector: str, carrier_message_id: str) -> bool:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        found = await session.scalar(select(Message.id).where(
            Message.connector == connector, Message.carrier_message_id == carrier_message_id,
            Message.direction == "inbound").limit(1))
    return found is not None


async def _owner(rt: Services, number: str, allowed_root: str | None) -> tuple[Account, Owner]:
    """The account that takes a message to ``number``: none for a terminated account, or
    one below a terminated parent, since terminated means no processing."""
    index = number_index(await rt.vault.platform_keys(), number)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        owner = await owner_of(session, index=index)
        chain = await ancestry(session, account_id=owner.tenant) if owner else []
    if owner is None or not chain or (allowed_root and not below(chain, allowed_root)):
        raise NotFound("No account owns that number or address.", code="number_not_found")
    if effective_status(chain) == AccountStatus.TERMINATED:
        raise Forbidden("The account that owns that number or address is terminated.",
                        code="account_terminated")
    return chain[0], owner


async def receive_inbound(rt: Services, *, sender: str, to: str, body: str, channel: str,
                          actor: Actor, allowed_root: str | None = None,
                          carrier: tuple[str, str | None] | None = None) -> Created:
    """Store a message sent to one of our numbers.

    ``allowed_root`` limits delivery to that account and its sub-accounts (the
    sandbox endpoint lets a client simulate messages only to its own numbers).
    """
    try:
        if channel == "email":
            number, origin = normalize_email(to), normalize_email(sender)
        else:
            number, origin = _our_number(to, channel), normalize_sender(sender)
    except AddressError as exc:
        raise InvalidRequest(str(exc), code=exc.code) from None
    account, owner = await _owner(rt, number, allowed_root)
    keys = await rt.vault.keys_for(account.id)
    # The number's own webhook URL, if it has one, else the account's.
    webhooks = replace(Subscription.of(account), url=owner.webhook_url or account.webhook_url)
    ctx = SendContext(account.id, keys, actor, webhooks)
    encoding, num_segments = _form(channel, body)
    # The sender's key before the transaction: nothing in it waits on the key store.
    [subject] = await subjects_for(keys, [origin])
    # Urgent: the carrier waits for our answer (an SMSC's deliver_sm_resp).
    async with rt.db.transaction(tenant=account.id, urgent=True) as session:
        created = await do_receive_inbound(
            session, ctx=ctx, subject=subject, sender=origin, to=number, body=body, channel=channel,
            encoding=encoding, num_segments=num_segments, now=rt.clock.now(),
            carrier=carrier)
        if channel == "whatsapp":  # the customer wrote: free-form replies for 24 hours
            await touch_window(session, keys=keys, customer=origin, at=rt.clock.now())
        to_smpp = channel == "sms" and await has_active_credential(session, tenant=account.id)
        if to_smpp:  # the account binds over SMPP: its inbound SMS go there too
            await enqueue_rows(session, [job_row(
                tenant=account.id, kind=SMPP_DELIVER_JOB, ref_id=created.row["id"],
                now=rt.clock.now(), payload={"type": "mo"})])
    rt.wakeups.notify(DELIVER_JOB, *([SMPP_DELIVER_JOB] if to_smpp else []))
    rt.metrics.messages_created.labels(channel, "inbound").inc()
    return created

