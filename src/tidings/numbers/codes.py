"""Sending a claim's one-time code through the platform itself.

The code goes out as an ordinary message (routing, carriers, receipts) of the
platform's own account, never of the claiming account: the claimant must not be able
to read the code back through the API, or the claim would prove nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError

from tidings.accounts.models import Account, AccountStatus
from tidings.accounts.service import do_create_account
from tidings.audit.service import Actor
from tidings.connectors.encoding import segment
from tidings.core.logs import get_logger
from tidings.core.services import Services
from tidings.messaging.drafts import Draft, SendOptions, check_options, make_draft
from tidings.messaging.sending import create_one
from tidings.messaging.service import SendContext
from tidings.numbers.claims import CODE_TTL
from tidings.web.errors import TidingsError
from tidings.webhooks.subscriptions import NO_SUBSCRIPTION

PLATFORM_ACCOUNT = "acc_platform"  # no API key; the operator reads its messages
PLATFORM_ACTOR = Actor("system", "number-claims")
log = get_logger("tidings.numbers")
SUBJECT = "Your verification code"


def code_text(code: str) -> str:
    minutes = int(CODE_TTL.total_seconds() // 60)
    return (f"Your verification code is {code}. It expires in {minutes} minutes. "
            "If you did not ask for it, ignore this message.")


async def send_code(rt: Services, *, number: str, code: str) -> str:
    """Send ``code`` to ``number`` (SMS) or to an address (email); the message id."""
    ctx, now = await _platform_context(rt), rt.clock.now()
    email = "@" in number
    options = check_options(
        sender=rt.settings.claim_code_email_sender if email else rt.settings.claim_code_sender,
        channel="email" if email else "sms", status_callback=None, send_at=None,
        validity_period=int(CODE_TTL.total_seconds()), now=now)
    draft = (make_draft(options, to=number, body=code_text(code), now=now, subject=SUBJECT)
             if email else _sms(options, number, code_text(code), now))
    return (await create_one(rt, ctx, draft)).id


def _sms(options: SendOptions, number: str, text: str, now: datetime) -> Draft:
    # ``number`` is checked already, and may be a business number no numbering plan
    # knows (a WhatsApp connector's): make_draft would refuse what the claim accepted.
    segmentation = segment(text)
    return Draft(number, options.sender, text, "sms", segmentation.encoding,
                 segmentation.num_segments, None, None, now + CODE_TTL)


async def send_code_quietly(rt: Services, *, number: str, code: str) -> None:
    """``send_code`` once the claim is answered: a failure is logged (by its code, not
    the number), and the account starts another claim."""
    try:
        await send_code(rt, number=number, code=code)
    except TidingsError as exc:
        log.warning("claim_code_not_sent", code=exc.code)


async def _platform_context(rt: Services) -> SendContext:
    keys = await rt.vault.keys_for(PLATFORM_ACCOUNT)
    try:
        async with rt.db.transaction(tenant=PLATFORM_ACCOUNT) as session:
            if await session.get(Account, PLATFORM_ACCOUNT) is None:
                await do_create_account(session, keys=keys, name="Tidings platform",
                                        parent_id=None, status=AccountStatus.ACTIVE,
                                        actor=PLATFORM_ACTOR, now=rt.clock.now())
    except IntegrityError:
        pass  # another process created it at the same moment
    return SendContext(PLATFORM_ACCOUNT, keys, PLATFORM_ACTOR, NO_SUBSCRIPTION)
