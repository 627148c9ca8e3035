"""What a message carries besides its text, per channel (stored as encrypted JSON)."""

from __future__ import annotations

import json

from tidings.connectors.base import EmailContent

CONTENT_FIELD = "messages.content"


def channel_content(channel: str, content_json: str | None) -> EmailContent | None:
    """The connector's view of a message's content (None for plain SMS)."""
    if channel != "email" or content_json is None:
        return None
    data = json.loads(content_json)
    return EmailContent(subject=str(data["subject"]), html=data.get("html"))


def email_fields(content_json: str | None) -> tuple[str | None, str | None]:
    """(subject, html) for the API's view of a message."""
    if content_json is None:
        return None, None
    data = json.loads(content_json)
    return data.get("subject"), data.get("html")
