"""One typed settings object, read from the environment (``TIDINGS_*``) once."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIDINGS_", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str = ""  # empty: SQLite file in data_dir
    keystore_url: str = ""  # empty: a separate SQLite file in data_dir
    master_key: str = ""  # base64 of 32 bytes; empty: a 0600 key file in data_dir

    host: str = "127.0.0.1"
    port: int = 8000
    run_workers: bool = True  # the API process also runs the outbox workers
    api_processes: int = Field(default=1, ge=1, le=64)  # more than one: PostgreSQL only
    worker_port: int = 8001  # /healthz and /metrics of ``tidings worker``
    # Job kinds this process works on; empty: all of them, and it runs the carriers.
    worker_jobs: list[str] = Field(default_factory=list)
    smpp_port: int = Field(default=2776, ge=0, le=65535)  # clients' SMPP binds; 0: off
    smpp_host: str = ""  # empty: the same address as the API

    max_body_bytes: int = 4 * 1024 * 1024
    batch_max_recipients: int = 10_000
    message_body_max_chars: int = 1_600

    worker_batch_size: int = 500
    worker_poll_seconds: float = 0.5  # in one process wake-ups start work at once
    worker_gather_seconds: float = Field(default=0.01, ge=0, le=1)  # after a short batch
    # While dispatch has a backlog, a webhook claim waits up to this long: carriers first.
    worker_yield_seconds: float = Field(default=1.0, ge=0, le=10)
    job_lease_seconds: float = 30.0
    dispatch_retry_max_attempts: int = 10

    webhook_timeout_seconds: float = 10.0
    webhook_max_age_seconds: float = 24 * 3600.0
    webhook_concurrency: int = 64
    # Of those, at most this many to one origin (scheme, host, port): a slow or hanging
    # endpoint holds these, and everyone else's webhooks go past it.
    webhook_origin_concurrency: int = Field(default=8, ge=1)
    # Webhooks to loopback and private addresses (10/8, fd00::/8, …): for a development
    # server whose webhooks go to the same machine. Link-local and metadata: never.
    webhook_allow_private: bool = False
    # Webhook loops of this process; 0: none, the webhooks are left to processes of
    # ``tidings worker --jobs webhook.deliver`` (which need at least one).
    webhook_loops: int = Field(default=4, ge=0, le=64)

    sandbox_receipt_delay_seconds: float = 0.2
    sandbox_poll_seconds: float = 1.0  # the carrier also wakes when a receipt falls due
    api_key_cache_seconds: float = 2.0
    routing_cache_seconds: float = Field(default=2.0, ge=0)  # route changes apply within
    connector_reload_seconds: float = Field(default=5.0, gt=0)  # connector changes apply within
    log_level: str = "INFO"
    extra_connectors: list[str] = Field(default_factory=list)

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'tidings.db'}"

    def resolved_keystore_url(self) -> str:
        return self.keystore_url or f"sqlite+aiosqlite:///{self.data_dir / 'keys.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")
