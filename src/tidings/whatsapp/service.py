"""The customer-service window: free-form WhatsApp messages only within 24 hours of the
customer's last message; templates any time. Services flush, never commit."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.connectors.base import WhatsAppContent
from tidings.connectors.whatsapp.window import CUSTOMER_SERVICE_WINDOW, may_send
from tidings.messaging.content import channel_content
from tidings.storage.vault import TenantKeys
from tidings.web.errors import InvalidRequest
from tidings.whatsapp.models import CustomerWindow

if TYPE_CHECKING:
    from tidings.core.services import Services
    from tidings.messaging.drafts import Draft

INDEX_FIELD = "whatsapp_windows.customer"


async def touch_window(session: AsyncSession, *, keys: TenantKeys, customer: str,
                       at: datetime) -> None:
    """The customer wrote at ``at``: the window runs 24 hours from the latest message."""
    key = (keys.tenant_id, keys.blind_index(customer, field=INDEX_FIELD))
    row = await session.get(CustomerWindow, key)
    if row is None:
        session.add(CustomerWindow(tenant_id=key[0], customer_index=key[1],
                                   last_inbound_at=at))
    elif row.last_inbound_at < at:
        row.last_inbound_at = at


async def check_customer_service_window(rt: Services, tenant: str, draft: Draft) -> None:
    """400 ``whatsapp_window_closed`` for a free-form message outside the window."""
    content = channel_content("whatsapp", draft.content_json)
    if content is not None and not isinstance(content, WhatsAppContent):
        return
    keys = await rt.vault.keys_for(tenant)
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        row = await session.get(CustomerWindow, (
            tenant, keys.blind_index(draft.to, field=INDEX_FIELD)))
    if not may_send(content, row.last_inbound_at if row else None, rt.clock.now()):
        hours = int(CUSTOMER_SERVICE_WINDOW.total_seconds() // 3600)
        raise InvalidRequest(f"The customer has not written in the last {hours} hours: "
                             "only a template may be sent.", code="whatsapp_window_closed")
