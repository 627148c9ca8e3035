"""What a message carries besides its text, per channel (stored as encrypted JSON)."""

from __future__ import annotations

import json
from typing import Any

from tidings.connectors.base import EmailContent, WhatsAppContent

CONTENT_FIELD = "messages.content"


def channel_content(channel: str, content_json: str | None
                    ) -> EmailContent | WhatsAppContent | None:
    """The connector's view of a message's content (None for plain text)."""
    if content_json is None:
        return None
    data = json.loads(content_json)
    if channel == "email":
        return EmailContent(subject=str(data["subject"]), html=data.get("html"))
    if channel == "whatsapp":
        return _whatsapp(data)
    return None


def _whatsapp(data: dict[str, Any]) -> WhatsAppContent:
    if "template" in data:
        template = data["template"]
        return WhatsAppContent("template", template_name=template["name"],
                               language=template["language"],
                               variables=tuple(template["variables"]))
    media = data["media"]
    return WhatsAppContent("media", media_type=media["type"], media_url=media["url"],
                           caption=media.get("caption"))


def content_fields(content_json: str | None) -> dict[str, Any]:
    """The API's extra fields of a message: subject and html, or template or media."""
    data: dict[str, Any] = json.loads(content_json) if content_json else {}
    return {name: data.get(name) for name in ("subject", "html", "template", "media")}
