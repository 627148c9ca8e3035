"""``TIDINGS_PLATFORM_MAIL_RELAY``: where the platform's own mail goes, as one URL.

* ``smtp://host[:port]``: plain SMTP (port 25), for a relay on the same host or network;
* ``smtp+starttls://[user:password@]host[:port]``: STARTTLS (port 587);
* ``smtps://[user:password@]host[:port]``: TLS from the first byte (port 465).

User and password are percent-decoded. ``?ca_file=/path`` verifies the relay with that CA
bundle instead of the system's. A password is refused over plain ``smtp://``: it would
cross the network in clear. Parsing is pure: nothing here connects or imports the SMTP
client, so a command that only lists the mailbox stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

Security = Literal["none", "starttls", "tls"]
SCHEMES: dict[str, tuple[Security, int]] = {
    "smtp": ("none", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}


class RelayUrlError(ValueError):
    """The relay URL cannot be used; the message never quotes the URL (it may hold a
    password)."""


@dataclass(frozen=True)
class RelayConfig:
    host: str
    port: int
    security: Security
    username: str | None = None
    password: str = field(default="", repr=False)
    ca_file: str | None = None


def parse_relay_url(url: str) -> RelayConfig:
    """The relay ``url`` names; ``RelayUrlError`` saying what is wrong with it."""
    parts = urlsplit(url.strip())
    if parts.scheme not in SCHEMES:
        raise RelayUrlError("TIDINGS_PLATFORM_MAIL_RELAY must start with smtp://, "
                            "smtp+starttls:// or smtps://")
    security, default_port = SCHEMES[parts.scheme]
    if not parts.hostname:
        raise RelayUrlError("TIDINGS_PLATFORM_MAIL_RELAY names no host")
    try:
        port = parts.port or default_port
    except ValueError:
        raise RelayUrlError("TIDINGS_PLATFORM_MAIL_RELAY has a port that is not a number "
                            "from 1 to 65535") from None
    if parts.username and security == "none":
        raise RelayUrlError("TIDINGS_PLATFORM_MAIL_RELAY: a user and password need "
                            "smtp+starttls:// or smtps://, not plain smtp://")
    return RelayConfig(host=parts.hostname, port=port, security=security,
                       username=unquote(parts.username) if parts.username else None,
                       password=unquote(parts.password or ""), ca_file=_ca_file(parts.query))


def _ca_file(query: str) -> str | None:
    options = parse_qs(query, keep_blank_values=True)
    unknown = set(options) - {"ca_file"}
    if unknown:
        raise RelayUrlError("TIDINGS_PLATFORM_MAIL_RELAY takes only the option ca_file, "
                            f"not {', '.join(sorted(unknown))}")
    return options["ca_file"][-1] if "ca_file" in options else None
