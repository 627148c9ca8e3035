"""Outbox handler ``smpp.deliver``: receipts and inbound messages to bound SMPP clients.

A job names a message and what to send: its ``receipt`` (to the binds of the
credential that submitted it) or the ``mo`` itself (to any receiving bind of the
owning account). With no such bind here the job waits (``WAIT_SECONDS``, and a
bind releases it at once); it is complete when the client answered ESME_ROK.
Addresses and text are decrypted at send time, so the job holds no personal data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from tidings.connectors.smpp.addresses import to_smpp
from tidings.connectors.smpp.coding import choose_coding, split_for_submit
from tidings.connectors.smpp.link import Link, LinkClosed, ResponseTimeout
from tidings.connectors.smpp.pdu import CommandStatus, DeliverSm, OptionalParams
from tidings.connectors.smpp.receipts import (
    ESM_CLASS_DELIVERY_RECEIPT,
    ReceiptText,
    format_receipt_text,
)
from tidings.jobs.outbox import ClaimedJob, complete, retry_many_later
from tidings.jobs.registry import JobRegistry
from tidings.messaging.status_changes import SMPP_DELIVER_JOB, MessageState, load_states_by_id
from tidings.smpp_gateway.models import SmppCredential
from tidings.smpp_gateway.queries import smpp_state, smpp_time
from tidings.storage.ciphers import FieldCipher
from tidings.storage.db import SYSTEM
from tidings.storage.subject_keys import ciphers_of

if TYPE_CHECKING:
    from tidings.core.services import Services

WAIT_SECONDS = 30.0  # how long a job waits for a bind before it looks again
STATS = {"delivered": "DELIVRD", "expired": "EXPIRED", "undelivered": "UNDELIV",
         "failed": "UNDELIV", "rejected": "REJECTD", "canceled": "DELETED",
         "not_accepted": "REJECTD"}


async def deliver_batch(rt: Services, jobs: Sequence[ClaimedJob]) -> None:
    gateway = rt.smpp_gateway
    async with rt.db.core(tenant=SYSTEM, write=False) as session:
        messages = await load_states_by_id(session, [j.ref_id for j in jobs], content=True)
        credentials = (await session.execute(select(
            SmppCredential.id, SmppCredential.tenant_id, SmppCredential.system_id).where(
            SmppCredential.tenant_id.in_({j.tenant_id for j in jobs}),
            SmppCredential.revoked_at.is_(None)))).all()
    done, waiting = [], []
    sends = []
    for job in jobs:
        message = messages.get(job.ref_id)
        cipher = None if message is None else await cipher_for(rt, message)
        if message is None or cipher is None:  # gone, or its person erased since
            done.append(job.id)
            continue
        system_ids = _targets(job, message, credentials)
        links = gateway.server.receiving_links(system_ids) if gateway else []
        if not system_ids:
            done.append(job.id)  # its credential was revoked: nobody to tell
        elif not links:
            waiting.append(job.id)
        else:
            sends.append((job, _send(job, message, cipher, links[0])))
    results = await asyncio.gather(*(send for _, send in sends))
    if gateway is not None:  # once per batch
        gateway.deliveries["ok"] += sum(results)
        gateway.deliveries["not_ok"] += len(results) - sum(results)
    done += [job.id for (job, _), ok in zip(sends, results, strict=True) if ok]
    waiting += [job.id for (job, _), ok in zip(sends, results, strict=True) if not ok]
    retry_at = rt.clock.now() + timedelta(seconds=WAIT_SECONDS)
    async with rt.db.core(tenant=SYSTEM) as session:
        await complete(session, done)
        await retry_many_later(session, [(job_id, retry_at) for job_id in waiting])


def _targets(job: ClaimedJob, message: MessageState,
             credentials: Sequence[tuple[str, str, str]]) -> set[str]:
    """The system_ids whose binds should get this job."""
    kind = (job.payload or {}).get("type")
    if kind == "receipt":
        return {system_id for cred_id, _, system_id in credentials
                if cred_id == message.smpp_receipt_to}
    return {system_id for _, tenant, system_id in credentials if tenant == message.tenant_id}


async def cipher_for(rt: Services, message: MessageState) -> FieldCipher | None:
    keys = await rt.vault.keys_for(message.tenant_id)
    return (await ciphers_of(keys, [message]))[message.id]


async def _send(job: ClaimedJob, message: MessageState, cipher: FieldCipher,
                link: Link) -> bool:
    to = cipher.decrypt(message.to_enc or b"", field="messages.to")
    sender = cipher.decrypt(message.from_enc or b"", field="messages.from")
    body = cipher.decrypt(message.body_enc or b"", field="messages.body")
    if (job.payload or {}).get("type") == "receipt":
        pdus = [_receipt(message, to=to, sender=sender, body=body)]
    else:
        pdus = _mobile_originated(to=to, sender=sender, body=body)
    try:
        for pdu in pdus:
            response = await link.request(pdu)
            if response.command_status != CommandStatus.ESME_ROK:
                return False
    except (LinkClosed, ResponseTimeout):
        return False
    return True


def _receipt(message: MessageState, *, to: str, sender: str, body: str) -> DeliverSm:
    """A receipt travels back: from the message's destination to its sender."""
    source_ton, source_npi, source = to_smpp(to)
    dest_ton, dest_npi, destination = to_smpp(sender)
    text = format_receipt_text(ReceiptText(
        message_id=message.id, submitted=1, delivered=int(message.status == "delivered"),
        submit_date=smpp_time(message.created_at)[:10],
        done_date=smpp_time(message.updated_at)[:10],
        stat=STATS.get(message.status, "UNKNOWN"), err="000", text=body[:20]))
    return DeliverSm(
        sequence_number=0, source_addr_ton=source_ton, source_addr_npi=source_npi,
        source_addr=source, dest_addr_ton=dest_ton, dest_addr_npi=dest_npi,
        destination_addr=destination, esm_class=ESM_CLASS_DELIVERY_RECEIPT,
        short_message=text.encode("ascii", "replace"),
        optional=OptionalParams(receipted_message_id=message.id,
                                message_state=smpp_state(message.status)))


def _mobile_originated(*, to: str, sender: str, body: str) -> list[DeliverSm]:
    source_ton, source_npi, source = to_smpp(sender)
    dest_ton, dest_npi, destination = to_smpp(to)
    parts = split_for_submit(body, coding=choose_coding(body), long_mode="udh",
                             reference=hash(body) & 0xFF)
    return [DeliverSm(sequence_number=0, source_addr_ton=source_ton,
                      source_addr_npi=source_npi, source_addr=source, dest_addr_ton=dest_ton,
                      dest_addr_npi=dest_npi, destination_addr=destination,
                      esm_class=part.esm_class, data_coding=part.data_coding,
                      short_message=part.short_message, optional=part.optional)
            for part in parts]


def register(registry: JobRegistry) -> None:
    """Receipts and incoming messages to clients bound to Tidings' SMPP server."""
    registry.job(SMPP_DELIVER_JOB, deliver_batch)
