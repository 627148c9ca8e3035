"""The 24-hour customer-service window: when WhatsApp lets a business send free-form.

WhatsApp delivers a plain text or media message only within 24 hours of the
customer's last message to that business number; outside it the Cloud API
refuses the send (error 131047) and only an approved template may open the
conversation. Checking before accepting a send lets the API answer a clear 400
instead of a message that fails later.

The pipeline keeps, per (customer number, our number), the time of the
customer's last message (``WebhookEvents.customer_messages``) and asks here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tidings.connectors.base import WhatsAppContent

CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)


def needs_customer_service_window(content: WhatsAppContent | None) -> bool:
    """Whether a message with this content may only go out inside the window.

    Templates never need it (they are how a business starts a conversation);
    plain text (``None``) and media do.
    """
    return content is None or content.kind != "template"


def may_send_free_form(last_customer_message_at: datetime | None, now: datetime) -> bool:
    """Whether the window is open: the customer wrote less than 24 hours before ``now``.

    ``None`` (the customer never wrote) means closed. A last message a little in
    the future (clocks disagree) counts as open. Both times must be timezone-aware.
    """
    if last_customer_message_at is None:
        return False
    _require_aware(last_customer_message_at, "last_customer_message_at")
    _require_aware(now, "now")
    return now - last_customer_message_at < CUSTOMER_SERVICE_WINDOW


def may_send(content: WhatsAppContent | None, last_customer_message_at: datetime | None,
             now: datetime) -> bool:
    """Whether a message with this content may be sent now: templates always, the rest
    only inside the customer-service window."""
    return (not needs_customer_service_window(content)
            or may_send_free_form(last_customer_message_at, now))


def _require_aware(moment: datetime, name: str) -> None:
    # Comparing naive and aware datetimes raises a bare TypeError, and a naive time
    # taken as local would shift the window by the server's UTC offset.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
