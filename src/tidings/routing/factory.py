"""Turn a stored connector configuration into a running connector object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tidings.connectors.base import Connector
from tidings.connectors.smpp.connector import SmppConnector, SmppSettings
from tidings.connectors.smpp.resolution import HOLD_SECONDS as UNKNOWN_HOLD_SECONDS
from tidings.connectors.smtp.connector import SmtpConnector, SmtpSettings
from tidings.connectors.smtp.listener import SmtpListenerSettings
from tidings.connectors.whatsapp.connector import WhatsAppConnector, WhatsAppSettings
from tidings.routing.models import ConnectorConfig


def build_connector(row: ConnectorConfig, secrets: dict[str, Any], *,
                    data_dir: Path, match_key: bytes,
                    smpp_unknown_hold_seconds: float = UNKNOWN_HOLD_SECONDS) -> Connector:
    """A connector for ``row``; ValueError for a kind or setting this version cannot run.

    A connector that keeps state of its own keeps it in ``data_dir``; ``match_key``
    (from the key store, never kept there) keys what it must recognise without
    storing it in clear.
    """
    try:
        if row.kind == "smpp":
            return SmppConnector(row.name, SmppSettings(**row.settings, **secrets),
                                 ledger_path=data_dir / f"smpp-{row.id}.db",
                                 match_key=match_key,
                                 unknown_hold_seconds=smpp_unknown_hold_seconds)
        if row.kind == "smtp":
            return SmtpConnector(row.name, _smtp_settings(row.settings, secrets))
        if row.kind == "whatsapp":
            return WhatsAppConnector(row.name, WhatsAppSettings(**row.settings, **secrets))
    except (TypeError, OSError) as exc:
        raise ValueError(f"bad {row.kind} settings: {exc}") from None
    raise ValueError(f"unknown connector kind {row.kind!r}")


def _smtp_settings(stored: dict[str, Any], secrets: dict[str, Any]) -> SmtpSettings:
    settings = dict(stored)
    listen_host, listen_port = settings.pop("listen_host"), settings.pop("listen_port")
    listener = None if listen_port is None else SmtpListenerSettings(
        host=listen_host, port=listen_port, hostname=settings["mail_domain"])
    return SmtpSettings(**settings, **secrets, listener=listener)
