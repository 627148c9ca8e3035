"""One typed settings object, read from the environment (``TIDINGS_*``) once."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where installs made before ``key_dir`` existed keep their keys.
KEYS_IN_DATA_DIR = ("master.key", "keys.db")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIDINGS_", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str = ""  # empty: SQLite file in data_dir
    # PostgreSQL: the role for work across tenants (workers, key look-up, the operator's
    # commands); empty: the database URL's role does it too (a single-role setup).
    system_database_url: str = ""
    # PostgreSQL: the role that owns the schema and runs migrations; empty: the database URL.
    migrate_database_url: str = ""
    # The master key file and the key store's SQLite file; empty: resolved_key_dir().
    key_dir: Path | None = None
    keystore_url: str = ""  # empty: a separate SQLite file in the key folder
    master_key: str = ""  # base64 of 32 bytes; empty: a 0600 key file in the key folder

    host: str = "127.0.0.1"
    port: int = 8000
    run_workers: bool = True  # the API process also runs the outbox workers
    api_processes: int = Field(default=1, ge=1, le=64)  # more than one: PostgreSQL only
    worker_port: int = 8001  # /healthz and /metrics of ``tidings worker``
    # Job kinds this process works on; empty: all of them, and it runs the carriers.
    worker_jobs: list[str] = Field(default_factory=list)
    smpp_port: int = Field(default=2776, ge=0, le=65535)  # clients' SMPP binds; 0: off
    smpp_host: str = ""  # empty: the same address as the API
    # After a crash, a submit to an SMSC that left without its answer recorded is held
    # this long (once bound again) while a receipt may resolve it, then sent again.
    # At most 120: each look at a held message is one of its dispatch attempts.
    smpp_unknown_hold_seconds: float = Field(default=60.0, ge=0, le=120)

    max_body_bytes: int = 4 * 1024 * 1024
    # Slow clients (http_protocol.py): a request's head, then its body, must arrive
    # within these; connections beyond the cap are answered 503 at once.
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    http_max_connections: int = Field(default=1000, ge=1)
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
    # A webhook batch's lease (renewed every third of it while the batch runs): after a
    # crash, the requests that were in flight go again this long after it at most.
    webhook_lease_seconds: float = Field(default=5.0, ge=1, le=300)
    webhook_max_age_seconds: float = 24 * 3600.0
    webhook_concurrency: int = 64
    # Of those, at most this many to one origin (scheme, host, port): a slow or hanging
    # endpoint holds these, and everyone else's webhooks go past it.
    webhook_origin_concurrency: int = Field(default=8, ge=1)
    # What an origin that keeps answering promptly may grow to (never more than three
    # quarters of webhook_concurrency); timeouts, refusals, 5xx and 429 halve it again.
    webhook_origin_concurrency_max: int = Field(default=64, ge=1)
    # Webhooks to loopback and private addresses (10/8, fd00::/8, …): for a development
    # server whose webhooks go to the same machine. Link-local and metadata: never.
    webhook_allow_private: bool = False
    # Webhook loops of this process; 0: none, the webhooks are left to processes of
    # ``tidings worker --jobs webhook.deliver`` (which need at least one).
    webhook_loops: int = Field(default=4, ge=0, le=64)

    sandbox_receipt_delay_seconds: float = 0.2
    sandbox_poll_seconds: float = 1.0  # the carrier also wakes when a receipt falls due
    # Who the one-time codes of number claims come from: an SMS sender id, an address.
    claim_code_sender: str = "Tidings"
    claim_code_email_sender: str = "verify@tidings.invalid"
    # The platform's own mail (docs/mail.md): an SMTP relay URL, or empty for the local
    # mailbox file in the data folder; and the address it comes from.
    platform_mail_relay: str = Field(default="", repr=False)  # may hold a password
    platform_mail_from: str = "notices@tidings.invalid"
    # Sign-up (docs/signup.md): "open" lets anyone create a pending account with
    # POST /v1/signup; a trial account sends this many messages, to verified numbers
    # only; links in the platform's mail start with public_url.
    signup: Literal["open", "closed"] = "closed"
    trial_message_allowance: int = Field(default=50, ge=0, le=1_000_000)
    public_url: str = "http://127.0.0.1:8000"
    api_key_cache_seconds: float = 2.0
    # People who log in (users/): a session lasts this long, and ends sooner when idle;
    # a password is changed this often; this many failed log-ins lock a user, first for
    # login_lock_minutes, twice as long for each further run of failures.
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    session_idle_minutes: float = Field(default=30.0, gt=0)
    password_max_age_days: int = Field(default=90, ge=1)
    login_lock_failures: int = Field(default=5, ge=1)
    login_lock_minutes: float = Field(default=15.0, gt=0)
    # Sub-account rights changed in another process apply within this (here at once).
    account_rights_cache_seconds: float = Field(default=2.0, ge=0)
    routing_cache_seconds: float = Field(default=2.0, ge=0)  # route changes apply within
    # Data subjects' keys kept unwrapped in memory, per tenant (docs/privacy.md); an
    # erasure in another process stops this one using the subject's key within
    # erasure_poll_seconds.
    subject_key_cache_size: int = Field(default=20_000, ge=1, le=10_000_000)
    # Keys made ahead, in one key-store transaction, for people not met before.
    subject_key_pool_batch: int = Field(default=256, ge=1, le=100_000)
    erasure_poll_seconds: float = Field(default=2.0, gt=0)
    # Message retention (docs/privacy.md): bodies deleted and addresses reduced to country
    # and number type after this many days; an account chooses within the operator's
    # limits.
    message_retention_days: int = Field(default=90, ge=1, le=36_500)
    message_retention_min_days: int = Field(default=1, ge=1, le=36_500)
    message_retention_max_days: int = Field(default=730, ge=1, le=36_500)
    # Service statistics (docs/usage-stats.md): a day is counted once it has been over
    # this many days (late delivery reports are in), and a count of fewer people than
    # stats_min_subjects is never shown (k-anonymity; 1 would show single people).
    stats_settle_days: int = Field(default=3, ge=0, le=30)
    stats_min_subjects: int = Field(default=5, ge=2, le=1000)
    connector_reload_seconds: float = Field(default=5.0, gt=0)  # connector changes apply within
    log_level: str = "INFO"
    extra_connectors: list[str] = Field(default_factory=list)

    # Rate limits (docs/rate-limits.md), in the limits library's notation: "1000/second",
    # or a burst and a sustained rate, "200/second;5000/minute". Well above what one
    # process serves (about 2,000 single sends a second), so they guard several.
    redis_url: str = ""  # redis:// or rediss://; empty: counted in this process's memory
    # A fixed window costs the least per request (a third of a sliding window counter's,
    # measured in memory); it lets up to twice a rate through across a window's edge.
    rate_limit_strategy: Literal["fixed-window", "sliding-window-counter",
                                 "moving-window"] = "fixed-window"
    rate_limit_api_key: str = "5000/second"
    rate_limit_user_session: str = "200/second"
    rate_limit_account: str = "10000/second"
    rate_limit_smpp_bind: str = "1000/second"  # submit_sm of one bind
    # Failures from one address (an IPv6 /64), then it is refused before any look-up.
    rate_limit_failed_logins_per_ip: str = "30/15 minutes"
    rate_limit_failed_binds_per_ip: str = "20/15 minutes"

    @field_validator("rate_limit_api_key", "rate_limit_user_session", "rate_limit_account",
                     "rate_limit_smpp_bind", "rate_limit_failed_logins_per_ip",
                     "rate_limit_failed_binds_per_ip")
    @classmethod
    def _a_rate(cls, rate: str) -> str:
        """A limit that parses and lets something through (``ValueError`` otherwise)."""
        if any(item.amount < 1 for item in parse_many(rate)):
            raise ValueError(f"{rate!r} would refuse everything")
        return rate

    @field_validator("redis_url")
    @classmethod
    def _a_redis_url(cls, url: str) -> str:
        if url and urlsplit(url).scheme not in ("redis", "rediss"):
            raise ValueError("TIDINGS_REDIS_URL must be a redis:// or rediss:// URL")
        return url

    @model_validator(mode="after")
    def _role_urls_name_the_database(self) -> Settings:
        """The system and migration URLs are other roles on the same PostgreSQL database."""
        for name in ("system_database_url", "migrate_database_url"):
            url = getattr(self, name)
            if url and _postgres_database(url) is None:
                raise ValueError(f"TIDINGS_{name.upper()} must be a postgresql:// URL")
            if url and _postgres_database(url) != _postgres_database(self.database_url):
                raise ValueError(f"TIDINGS_{name.upper()} must name the database of "
                                 "TIDINGS_DATABASE_URL (same host, port and database), "
                                 "with another role")
        return self

    @model_validator(mode="after")
    def _retention_default_within_limits(self) -> Settings:
        low, high = self.message_retention_min_days, self.message_retention_max_days
        if not low <= self.message_retention_days <= high:
            raise ValueError(f"TIDINGS_MESSAGE_RETENTION_DAYS must be within "
                             f"TIDINGS_MESSAGE_RETENTION_MIN_DAYS and _MAX_DAYS ({low}..{high})")
        return self

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'tidings.db'}"

    def resolved_system_database_url(self) -> str:
        """Where ``tenant=SYSTEM`` work connects: its own role, or the database URL's."""
        return self.system_database_url or self.resolved_database_url()

    def resolved_migrate_database_url(self) -> str:
        return self.migrate_database_url or self.resolved_database_url()

    def resolved_keystore_url(self) -> str:
        return self.keystore_url or f"sqlite+aiosqlite:///{self.resolved_key_dir() / 'keys.db'}"

    def resolved_key_dir(self) -> Path:
        """Where the master key file and the key store live: beside the data, not in it.

        By default ``<data_dir>-keys`` (``data`` -> ``data-keys``), so that a copy or
        a backup of the data folder does not carry the keys that decrypt it. An
        install that already keeps its keys in the data folder goes on using them
        there (moving them is the operator's step: docs/operations.md).
        """
        if self.key_dir is not None:
            return self.key_dir
        if any((self.data_dir / name).exists() for name in KEYS_IN_DATA_DIR):
            return self.data_dir
        data = self.data_dir.absolute()
        return data.with_name(f"{data.name}-keys")

    @property
    def keys_in_data_dir(self) -> bool:
        """Whether key files share the data folder (an install from before ``key_dir``)."""
        uses_files = not self.master_key or not self.keystore_url
        return uses_files and self.resolved_key_dir().absolute() == self.data_dir.absolute()

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")


def _postgres_database(url: str) -> tuple[str, int | None, str] | None:
    """(host, port, database) of a PostgreSQL URL; None for anything else."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgresql"):
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    database = parts.path.lstrip("/")
    if not parts.hostname or not database:
        return None
    return parts.hostname, port, database
