"""Everything a running Tidings needs, built once from settings.

``open_runtime`` migrates the database, opens the key store, starts the
connectors and the webhook client; nothing connects at import time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tidings.accounts.auth import Authenticator
from tidings.accounts.rights import AccountRightsCache
from tidings.audit import tasks as audit_tasks
from tidings.audit.chain import AuditChain
from tidings.audit.legacy import key_legacy_chains
from tidings.breaches import tasks as breach_tasks
from tidings.connectors.base import DeliveryReport, InboundMessage
from tidings.connectors.registry import ConnectorRegistry
from tidings.connectors.sandbox.carrier import SandboxCarrier
from tidings.connectors.sandbox.ledger import SandboxLedger
from tidings.connectors.smpp.connector import SmppConnector
from tidings.connectors.smpp.stats import SmppSnapshot
from tidings.core.clock import Clock
from tidings.core.logs import get_logger
from tidings.core.settings import Settings
from tidings.jobs.registry import JobRegistry
from tidings.jobs.wakeup_bridge import PostgresWakeupBridge, asyncpg_dsn
from tidings.jobs.wakeup_sockets import SocketWakeupBridge, socket_directory
from tidings.jobs.wakeups import Wakeups
from tidings.jobs.workers import WorkerPool
from tidings.mail import tasks as mail_tasks
from tidings.mail.sender import PlatformMailSender
from tidings.messaging import tasks as messaging_tasks
from tidings.messaging.idempotency import key_legacy_fingerprints
from tidings.messaging.inbound import take_inbound
from tidings.metrics import Metrics
from tidings.migrations.run import upgrade
from tidings.policies import tasks as policy_tasks
from tidings.privacy import tasks as privacy_tasks
from tidings.privacy.erasure import replay_erasures
from tidings.privacy.restrictions import RestrictedSubjects
from tidings.routing.cache import RoutingCache
from tidings.smpp_gateway import tasks as smpp_tasks
from tidings.smpp_gateway.gateway import SmppGateway
from tidings.storage.db import Database
from tidings.storage.files import make_storage_private
from tidings.storage.vault import Vault
from tidings.storage.writer import GroupWriter
from tidings.subprocessors import tasks as subprocessor_tasks
from tidings.usage_stats import tasks as usage_stats_tasks
from tidings.users.sessions import SessionPolicy
from tidings.web.ratelimits import RateLimits, open_rate_limits
from tidings.webhooks import tasks as webhook_tasks
from tidings.webhooks.recording import AttemptRecorder
from tidings.webhooks.sender import WebhookSender

if TYPE_CHECKING:  # the carriers' code (aiohttp, aiosmtpd, …) only where carriers run,
    # not in every CLI command that opens a runtime
    from tidings.routing.supervisor import ConnectorSupervisor

log = get_logger("tidings.runtime")
RATE_LIMIT_ADDRESS_FIELD = "rate_limits.address"


@dataclass
class Runtime:
    settings: Settings
    db: Database
    vault: Vault
    clock: Clock
    connectors: ConnectorRegistry
    webhook_sender: WebhookSender
    auth: Authenticator
    writer: GroupWriter
    webhook_recorder: AttemptRecorder
    rate_limits: RateLimits
    platform_mail: PlatformMailSender
    wakeups: Wakeups = field(default_factory=Wakeups)
    metrics: Metrics = field(default_factory=Metrics)
    workers: WorkerPool | None = None
    wakeup_bridge: PostgresWakeupBridge | SocketWakeupBridge | None = None
    routes: RoutingCache = field(default_factory=lambda: RoutingCache(ttl_seconds=2.0))
    connector_supervisor: ConnectorSupervisor | None = None
    smpp_gateway: SmppGateway | None = None
    account_rights: AccountRightsCache = field(init=False)
    restricted_subjects: RestrictedSubjects = field(init=False)

    def __post_init__(self) -> None:
        self.account_rights = AccountRightsCache(
            self.db, self.vault, cache_seconds=self.settings.account_rights_cache_seconds)
        self.restricted_subjects = RestrictedSubjects(
            self.db, cache_seconds=self.settings.account_rights_cache_seconds)

    @property
    def audit_chain(self) -> AuditChain:
        """The audit chains' key and checkpoints, from the key store."""
        return AuditChain.of(self.vault)

    def worker_pool(self) -> WorkerPool:
        if self.workers is None:
            settings = self.settings
            self.workers = WorkerPool(self, JOBS.workers(settings, only=settings.worker_jobs),
                                      JOBS.chores)
        return self.workers

    def smpp_snapshots(self) -> list[tuple[str, SmppSnapshot]]:
        """Each SMPP connector's binds and counts, for ``/metrics``."""
        return [(c.name, c.smpp_snapshot()) for c in self.connectors.all()
                if isinstance(c, SmppConnector)]

    def gateway_snapshot(self) -> SmppSnapshot | None:
        return self.smpp_gateway.smpp_snapshot() if self.smpp_gateway else None

    async def report_sink(self, connector: str,
                          reports: Sequence[DeliveryReport]) -> list[bool]:
        return await messaging_tasks.apply_reports(self, connector, reports)

    async def inbound_sink(self, connector: str,
                           messages: Sequence[InboundMessage]) -> list[bool]:
        return await take_inbound(self, connector, messages)


def job_registry() -> JobRegistry:
    """Every domain's job kinds and chores (each domain's ``tasks.register``)."""
    registry = JobRegistry()
    for domain in DOMAIN_TASKS:
        domain.register(registry)
    return registry


# The domains with work for the workers, in the order a drain runs their kinds (and a
# housekeeping round their chores: the statistics' before retention's).
DOMAIN_TASKS = (messaging_tasks, webhook_tasks, smpp_tasks, mail_tasks, audit_tasks,
                usage_stats_tasks, privacy_tasks, breach_tasks, subprocessor_tasks, policy_tasks)
JOBS = job_registry()
JOB_KINDS = JOBS.kind_names


def sandbox_ledger_url(settings: Settings) -> str:
    return f"sqlite+aiosqlite:///{settings.data_dir / 'sandbox-carrier.db'}"


def migrate(settings: Settings) -> None:
    """Bring the database up to date; its data migrations may use the key store."""
    upgrade(settings.resolved_migrate_database_url(), settings=settings)


def prepare_storage(settings: Settings) -> None:
    """Migrate the database and create the key store and master key, once.

    Processes started together would otherwise race to do it.
    """
    async def _prepare() -> None:
        make_storage_private(settings)
        await asyncio.to_thread(migrate, settings)
        vault = await Vault.open(settings)
        await vault.close()

    asyncio.run(_prepare())


def open_database(settings: Settings) -> Database:
    """The database with its tenant and cross-tenant roles (on PostgreSQL)."""
    db = Database(settings.resolved_database_url(),
                  system_url=settings.resolved_system_database_url())
    if db.single_role and not db.is_sqlite:
        # Whoever connects can then see every tenant by asking for the system's view.
        log.warning("database_single_role",
                    detail="TIDINGS_SYSTEM_DATABASE_URL is not set (or names the same "
                           "role): one role does tenant and cross-tenant work, and tenant "
                           "isolation rests on the application alone "
                           "(docs/operations.md#postgresql-roles)")
    return db


async def open_runtime(settings: Settings, *, clock: Clock | None = None,
                       start_background: bool = True) -> Runtime:
    """Build and start a runtime. ``start_background=False`` leaves workers to the caller."""
    make_storage_private(settings)
    platform_mail = PlatformMailSender.from_settings(settings)  # a bad relay URL stops here
    await asyncio.to_thread(migrate, settings)
    clock = clock or Clock()
    db = open_database(settings)
    try:
        await db.check_roles()
    except BaseException:
        await db.dispose()
        raise
    db.start_checkpoints()
    vault = await Vault.open(settings)
    await key_legacy_fingerprints(db, vault)
    await key_legacy_chains(db, AuditChain.of(vault), now=clock.now(),
                            owner_url=settings.migrate_database_url)
    # Before any traffic: a database restored from a backup older than some erasures
    # must not serve those people's messages again (docs/privacy.md, erasure).
    replayed = await replay_erasures(db, vault)
    if replayed:
        log.info("erasure_ledger_replayed", entries=replayed)
    carrier = SandboxCarrier(SandboxLedger(sandbox_ledger_url(settings)),
                             receipt_delay_seconds=settings.sandbox_receipt_delay_seconds,
                             poll_seconds=settings.sandbox_poll_seconds,
                             clock=clock.now)
    sender = WebhookSender(timeout_seconds=settings.webhook_timeout_seconds,
                           concurrency=settings.webhook_concurrency,
                           origin_concurrency=settings.webhook_origin_concurrency,
                           origin_concurrency_max=settings.webhook_origin_concurrency_max,
                           allow_private=settings.webhook_allow_private)
    rate_limits = await _open_rate_limits(settings, vault)
    rt = Runtime(settings, db, vault, clock, ConnectorRegistry([carrier]), sender,
                 Authenticator(db, clock, cache_seconds=settings.api_key_cache_seconds,
                               sessions=SessionPolicy.of(settings)),
                 GroupWriter(db), AttemptRecorder(db), rate_limits, platform_mail)
    rt.routes = RoutingCache(ttl_seconds=settings.routing_cache_seconds)
    rt.metrics.watch_smpp(rt.smpp_snapshots, rt.gateway_snapshot)
    await sender.start()
    rt.writer.start()
    if start_background:  # keys erased by other processes stop being used here
        vault.watch_erasures(settings.erasure_poll_seconds)
    rt.webhook_recorder.start()
    rt.wakeup_bridge = (
        SocketWakeupBridge(socket_directory(db.url), rt.wakeups, JOB_KINDS) if db.is_sqlite
        else PostgresWakeupBridge(asyncpg_dsn(db.url), rt.wakeups, JOB_KINDS))
    await rt.wakeup_bridge.start()
    # Connectors run where the workers run: an API-only process (or a worker given only
    # some job kinds) must not also poll the carriers, or two would report one receipt.
    if start_background and settings.run_workers and settings.worker_jobs:
        rt.worker_pool().start()
    elif start_background and settings.run_workers:
        from tidings.routing.supervisor import ConnectorSupervisor

        await rt.connectors.start(rt.report_sink, rt.inbound_sink)
        rt.connector_supervisor = ConnectorSupervisor(
            db, vault, rt.connectors, reload_seconds=settings.connector_reload_seconds,
            data_dir=settings.data_dir,
            smpp_unknown_hold_seconds=settings.smpp_unknown_hold_seconds)
        await rt.connector_supervisor.start()
        await _start_smpp_gateway(rt)
        rt.worker_pool().start()
    return rt


async def _open_rate_limits(settings: Settings, vault: Vault) -> RateLimits:
    """Client addresses are counted under the platform's blind index, never in clear."""
    platform = await vault.platform_keys()
    return await open_rate_limits(
        settings, address_key=lambda address: platform.blind_index(
            address, field=RATE_LIMIT_ADDRESS_FIELD))


async def _start_smpp_gateway(rt: Runtime) -> None:
    """Clients' SMPP binds live where the workers run: their receipts go out from here."""
    if rt.settings.smpp_port:
        rt.smpp_gateway = SmppGateway(rt)
        port = await rt.smpp_gateway.start(rt.settings.smpp_host or rt.settings.host,
                                           rt.settings.smpp_port)
        log.info("smpp_gateway_listening", port=port)


async def close_runtime(rt: Runtime) -> None:
    if rt.smpp_gateway is not None:
        await rt.smpp_gateway.stop()
    await rt.writer.stop()
    if rt.workers is not None:
        await rt.workers.stop()
    await rt.webhook_recorder.stop()  # after the workers: their batches' answers too
    if rt.connector_supervisor is not None:
        await rt.connector_supervisor.stop()
    await rt.connectors.stop()
    if rt.wakeup_bridge is not None:
        await rt.wakeup_bridge.stop()
    await rt.webhook_sender.close()
    await rt.rate_limits.close()
    await rt.platform_mail.close()
    await rt.vault.close()
    await rt.db.dispose()
