"""Fixtures: a real database (SQLite, and PostgreSQL when TIDINGS_TEST_POSTGRES_URL is set),
a runtime with a fake clock, an HTTP client on the real app, and a real webhook receiver."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from argon2 import PasswordHasher
from hypothesis import settings as hypothesis_settings
from sqlalchemy import delete, func, select

from tests.pg import (
    PG_ADMIN_URL,
    as_owner,
    empty_database,
    fresh_database,
    fresh_keystore,
    role_settings,
)
from tidings.accounts.models import AccountStatus
from tidings.accounts.provision import Provisioned, provision_account
from tidings.app import create_app
from tidings.audit.service import Actor
from tidings.core.clock import FakeClock
from tidings.core.settings import Settings
from tidings.jobs.outbox import Job
from tidings.messaging.models import IdempotencyKey, Message, MessageEvent
from tidings.migrations.run import upgrade
from tidings.numbers.api import assign_number
from tidings.numbers.codes import PLATFORM_ACCOUNT
from tidings.runtime import Runtime, close_runtime, open_runtime
from tidings.smpp_gateway import service as smpp_gateway_service
from tidings.storage.db import SYSTEM
from tidings.storage.keystore import audit_checkpoints_table, erasure_ledger_table
from tidings.storage.subject_keys import ciphers_of
from tidings.users import passwords
from tidings.webhooks.models import WebhookDelivery

TEST_ACTOR = Actor("operator", "tests")
# The master key of the PostgreSQL key store that a test process's runtimes share.
POSTGRES_MASTER_KEY = base64.b64encode(os.urandom(32)).decode()

# No time limit per example: speed is measured in bench/, not here, and a slow example
# (a full garbage collection, a numbering plan loaded on first use, coverage) is no bug.
hypothesis_settings.register_profile("tidings", deadline=None)
hypothesis_settings.load_profile("tidings")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow files first (the process-level functional tests, each up to two
    minutes): ``pytest-xdist`` hands files out in this order, so the quick ones fill the
    end of the run instead of one core finishing a long file while the other idles."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# argon2 as production runs it (64 MiB, three passes, four lanes) costs 130 ms a hash or a
# check on two cores; the suite logs people in and binds SMPP clients thousands of times.
# The same argon2id at its cheapest, but where a test is about the parameters themselves
# (rehashing, the stand-in hash's cost): those ask for ``real_password_hashing``.
QUICK_ARGON2 = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(autouse=True)
def _quick_password_hashing(request: pytest.FixtureRequest,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("real_password_hashing") is None:
        monkeypatch.setattr(passwords, "_HASHER", QUICK_ARGON2)
        monkeypatch.setattr(smpp_gateway_service, "_HASHER", QUICK_ARGON2)
    # The SMPP gateway's stand-in hash is made once a process: with this test's hasher.
    smpp_gateway_service.stand_in_hash.cache_clear()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database, dropped at the end: the app role's URL (see tests/pg.py)."""
    if not PG_ADMIN_URL:
        pytest.skip("TIDINGS_TEST_POSTGRES_URL is not set")
    with fresh_database("tidings_test") as database:
        yield database.app_url


@pytest.fixture(scope="session")
def postgres_keystore_url() -> Iterator[str]:
    """The key store on PostgreSQL: a database of its own that the app and system roles
    cannot open (PSE-2), for the runtimes of the PostgreSQL variant of every test."""
    if not PG_ADMIN_URL:
        pytest.skip("TIDINGS_TEST_POSTGRES_URL is not set")
    with fresh_keystore("tidings_test_keys") as url:
        yield url


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database at the newest revision, migrated once per test process:
    each test starts from a copy (its runtime still runs the migrations, which find
    nothing to do), rather than running every migration again."""
    folder = tmp_path_factory.mktemp("migrated")
    url = f"sqlite+aiosqlite:///{folder / 'tidings.db'}"
    upgrade(url, settings=Settings(data_dir=folder / "data", database_url=url))
    return folder / "tidings.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        copy_database(request.getfixturevalue("migrated_sqlite"), tmp_path / "tidings.db")
        return f"sqlite+aiosqlite:///{tmp_path / 'tidings.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def copy_database(source: Path, target: Path) -> None:
    """SQLite's backup API: a consistent copy, whatever its write-ahead log holds."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


async def _truncate_all(rt: Runtime) -> None:
    if rt.db.is_sqlite:
        return
    await empty_database(as_owner(rt.settings.resolved_database_url()))
    # Opening the runtime checkpointed the chains an earlier test left behind; the
    # erasures of earlier tests are theirs (the keys stay: this runtime holds some).
    async with rt.vault.keystore.begin() as conn:
        await conn.execute(delete(audit_checkpoints_table))
        await conn.execute(delete(erasure_ledger_table))


@pytest.fixture(autouse=True)
def _no_outgoing_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Webhooks go straight to the tests' receivers, whatever proxy the machine sets."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Settings:
    # On PostgreSQL the three roles: tenant work, work across tenants, migrations; and,
    # for the tests marked ``pg_keystore``, the key store in a database of its own (the
    # others keep it in a SQLite file: a PostgreSQL key store costs each test's runtime
    # a few dozen more round trips and commits, minutes over the suite).
    keystore = ({"keystore_url": request.getfixturevalue("postgres_keystore_url"),
                 "master_key": POSTGRES_MASTER_KEY}  # the key store outlives each test
                if database_url.startswith("postgresql")
                and request.node.get_closest_marker("pg_keystore") else {})
    return Settings(data_dir=tmp_path / "data", database_url=database_url,
                    **role_settings(database_url), **keystore,
                    sandbox_receipt_delay_seconds=5.0, sandbox_poll_seconds=3600.0,
                    api_key_cache_seconds=0.0, smpp_port=0,
                    # A test meets a few people: a few keys made ahead, not 256.
                    subject_key_pool_batch=8,
                    # The suite's webhook receivers listen on loopback.
                    webhook_allow_private=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def rt(settings: Settings, clock: FakeClock) -> AsyncIterator[Runtime]:
    """A runtime whose workers the test drives (``rt.worker_pool().drain()``)."""
    runtime = await open_runtime(settings, clock=clock, start_background=False)
    await _truncate_all(runtime)
    # Connectors take the report sink but run no background loop: the test decides
    # when receipts arrive (``settle``).
    for connector in runtime.connectors.all():
        await connector.attach(runtime.report_sink)  # type: ignore[attr-defined]
    yield runtime
    await close_runtime(runtime)


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(rt.settings)
    app.state.runtime = rt  # the fixture owns the runtime's life, not the app's lifespan
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tidings.test") as c:
        yield c


@dataclass
class Tenant:
    """An account with its key, ready to call the API."""

    made: Provisioned

    @property
    def id(self) -> str:
        return self.made.account.id

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.made.api_key}"}


async def make_tenant(rt: Runtime, name: str = "Acme", *, parent: str | None = None,
                      status: AccountStatus = AccountStatus.ACTIVE,
                      webhook_url: str | None = None) -> Tenant:
    return Tenant(await provision_account(rt, name=name, parent_id=parent, status=status,
                                          actor=TEST_ACTOR, webhook_url=webhook_url))


@pytest.fixture
async def acme(rt: Runtime) -> Tenant:
    return await make_tenant(rt, "Acme")


@pytest.fixture
async def globex(rt: Runtime) -> Tenant:
    return await make_tenant(rt, "Globex")


@dataclass
class HookServer:
    """A real HTTP server on loopback that records webhook requests."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    answer: str = "ok"
    # Answer nothing until this many requests are open at once (0: answer each at once);
    # a test proves by it that more than one sender had requests in flight.
    answer_once_open: int = 0
    _open: int = 0
    _answering: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        """Answer every request held open."""
        self._answering.set()

    def bodies(self) -> list[dict[str, Any]]:
        return [r["json"] for r in self.requests]

    async def hold(self) -> None:
        self._open += 1
        try:
            if self._open >= self.answer_once_open:
                self._answering.set()
            await self._answering.wait()
        finally:
            self._open -= 1


@asynccontextmanager
async def hook_server(path: str = "/hook") -> AsyncIterator[HookServer]:
    """Start a recording webhook receiver on a free loopback port."""
    server = HookServer(url="")

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        server.requests.append({"headers": dict(request.headers), "raw": raw,
                                "json": orjson.loads(raw)})
        await server.hold()
        return web.Response(status=server.status, text=server.answer)

    app = web.Application()
    app.router.add_post(path, handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"http://127.0.0.1:{port}{path}"
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
async def hooks() -> AsyncIterator[HookServer]:
    async with hook_server() as server:
        yield server


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    """An RFC 9457 problem with this status and machine-readable code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.json()


async def stored_counts(rt: Runtime) -> dict[str, int]:
    """Rows of everything a send writes, across all tenants (to prove nothing was stored)."""
    tables = {"messages": Message, "message_events": MessageEvent, "jobs": Job,
              "idempotency_keys": IdempotencyKey, "webhook_deliveries": WebhookDelivery}
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return {name: int(await session.scalar(select(func.count()).select_from(model)) or 0)
                for name, model in tables.items()}


async def codes_sent(rt: Runtime, to: str) -> list[str]:
    """The one-time codes the platform sent to ``to``, oldest first, read from the stored
    messages as the phone (or mailbox) would read them."""
    keys = await rt.vault.keys_for(PLATFORM_ACCOUNT)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        rows = (await session.scalars(select(Message).where(
            Message.tenant_id == PLATFORM_ACCOUNT).order_by(Message.id))).all()
    ciphers = await ciphers_of(keys, rows)
    clear = [(c.decrypt(row.to_enc, field="messages.to"),
              c.decrypt(row.body_enc, field="messages.body"))
             for row in rows if (c := ciphers[row.id]) is not None]
    return [re.findall(r"\b[0-9]{6}\b", body)[0] for number, body in clear if number == to]


async def assign(rt: Runtime, tenant: str, number: str) -> dict[str, Any]:
    """Give ``number`` to the account as the operator does (no claim, no code)."""
    return (await assign_number(rt, account_id=tenant, raw_number=number,
                                actor=TEST_ACTOR)).model_dump(mode="json")


async def own_number(client: httpx.AsyncClient, rt: Runtime, headers: dict[str, str],
                     number: str) -> dict[str, Any]:
    """Claim ``number`` and verify the claim with the code sent to it: the account owns it."""
    started = await client.post("/v1/numbers", headers=headers, json={"number": number})
    assert started.status_code == 202, started.text
    code = (await codes_sent(rt, started.json()["number"]))[-1]
    verified = await client.post(f"/v1/numbers/claims/{started.json()['id']}/verify",
                                 headers=headers, json={"code": code})
    assert verified.status_code == 201, verified.text
    return dict(verified.json())


async def settle(rt: Runtime, clock: FakeClock, *, seconds: float = 0.0) -> None:
    """Run the pipeline until idle; optionally move time on and let receipts arrive."""
    pool = rt.worker_pool()
    await pool.drain()
    if seconds:
        clock.advance(seconds)
        for connector in rt.connectors.all():
            emit = getattr(connector, "emit_due_receipts", None)
            if emit is not None:
                await emit()
        await pool.drain()
