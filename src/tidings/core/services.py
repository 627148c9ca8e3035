"""What a running Tidings hands to its endpoints, job handlers and SMPP gateway.

``runtime.Runtime`` (the composition root) builds these services and satisfies this
protocol; code below it names the protocol, never the runtime, so imports go one way:
the runtime imports the domains, no domain imports the runtime. The types are named
for the type checker only: importing this module imports none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tidings.accounts.auth import Authenticator
    from tidings.accounts.rights import AccountRightsCache
    from tidings.audit.chain import AuditChain
    from tidings.connectors.base import DeliveryReport, InboundMessage
    from tidings.connectors.registry import ConnectorRegistry
    from tidings.connectors.smpp.stats import SmppSnapshot
    from tidings.core.clock import Clock
    from tidings.core.settings import Settings
    from tidings.jobs.wakeups import Wakeups
    from tidings.mail.sender import PlatformMailSender
    from tidings.metrics import Metrics
    from tidings.privacy.restrictions import RestrictedSubjects
    from tidings.routing.cache import RoutingCache
    from tidings.smpp_gateway.gateway import SmppGateway
    from tidings.storage.db import Database
    from tidings.storage.vault import Vault
    from tidings.storage.writer import GroupWriter
    from tidings.web.ratelimits import RateLimits
    from tidings.webhooks.recording import AttemptRecorder
    from tidings.webhooks.sender import WebhookSender


class Services(Protocol):
    settings: Settings
    db: Database
    vault: Vault
    clock: Clock
    connectors: ConnectorRegistry
    webhook_sender: WebhookSender
    auth: Authenticator
    account_rights: AccountRightsCache
    restricted_subjects: RestrictedSubjects
    writer: GroupWriter
    webhook_recorder: AttemptRecorder
    platform_mail: PlatformMailSender
    wakeups: Wakeups
    metrics: Metrics
    routes: RoutingCache
    smpp_gateway: SmppGateway | None
    rate_limits: RateLimits

    @property
    def audit_chain(self) -> AuditChain:
        """The audit chains' key and checkpoints."""

    def smpp_snapshots(self) -> list[tuple[str, SmppSnapshot]]:
        """Each SMPP connector running in this process: binds, window, counts."""

    async def report_sink(self, connector: str,
                          reports: Sequence[DeliveryReport]) -> list[bool]:
        """Apply delivery reports a connector received; which were taken."""

    async def inbound_sink(self, connector: str,
                           messages: Sequence[InboundMessage]) -> list[bool]:
        """Take incoming messages a connector received; which were taken."""
