"""A message as a reader may see it: numbers masked and bodies left out unless the
reader holds ``messages:read_content`` (support, compliance and scoped keys do not)."""

from __future__ import annotations

from collections.abc import Set

from tidings.accounts.permissions import (
    ContentView,
    Permission,
    body_view,
    mask_number,
    number_view,
)
from tidings.messaging.schemas import MessageOut

_HIDDEN_CONTENT = {"body": None, "subject": None, "html": None, "template": None,
                   "media": None}


def as_seen_by(message: MessageOut, permissions: Set[Permission]) -> MessageOut:
    changes: dict[str, object] = {}
    if number_view(permissions) is not ContentView.FULL:
        changes |= {"to": message.to and mask_address(message.to),
                    "from_": message.from_ and mask_address(message.from_)}
    if body_view(permissions) is not ContentView.FULL:
        changes |= _HIDDEN_CONTENT
    return message.model_copy(update=changes) if changes else message


def mask_address(address: str) -> str:
    """``+12025550173`` → ``+1202555****``; ``ann@example.com`` → ``a**@example.com``;
    anything else (a WhatsApp id, a sender name) keeps its first two characters."""
    try:
        return mask_number(address)
    except ValueError:
        pass
    local, at, domain = address.rpartition("@")
    if at and local:
        return local[0] + "*" * (len(local) - 1) + "@" + domain
    return address[:2] + "*" * max(len(address) - 2, 0)
