"""Turn a stored connector configuration into a running connector object."""

from __future__ import annotations

from typing import Any

from tidings.connectors.base import Connector
from tidings.connectors.smpp.connector import SmppConnector, SmppSettings
from tidings.routing.models import ConnectorConfig


def build_connector(row: ConnectorConfig, secrets: dict[str, Any]) -> Connector:
    """A connector for ``row``; ValueError for a kind or setting this version cannot run."""
    if row.kind == "smpp":
        try:
            return SmppConnector(row.name, SmppSettings(**row.settings, **secrets))
        except TypeError as exc:
            raise ValueError(f"bad SMPP settings: {exc}") from None
    raise ValueError(f"unknown connector kind {row.kind!r}")
