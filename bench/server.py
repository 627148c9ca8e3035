"""Start a real ``tidings serve`` process for a benchmark and provision an account."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Layout:
    """How Tidings runs in a benchmark: its database and its processes."""

    store: str  # "sqlite" or "postgres"
    api_processes: int = 1
    worker_apart: bool = False  # API-only ``tidings serve`` plus one ``tidings worker``
    webhook_workers: int = 0  # ``tidings worker --jobs webhook.deliver`` beside them


LAYOUTS = {
    "sqlite": Layout("sqlite"),
    "sqlite-webhooks": Layout("sqlite", webhook_workers=1),
    "sqlite-split-webhooks": Layout("sqlite", worker_apart=True, webhook_workers=1),
    "postgres": Layout("postgres"),
    "postgres-split": Layout("postgres", api_processes=2, worker_apart=True),
    "postgres-split-webhooks": Layout("postgres", api_processes=2, worker_apart=True,
                                      webhook_workers=1),
}


@dataclass
class Server:
    """``tidings serve`` as ``layout`` says: alone, or API processes and a ``tidings
    worker``; webhook workers beside them. Where there are webhook workers, only they
    deliver webhooks on SQLite (TIDINGS_WEBHOOK_LOOPS=0 elsewhere); on PostgreSQL the
    full worker takes a share too.
    """

    env: dict[str, str]
    port: int
    layout: Layout
    process: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    worker_port: int = 0
    helpers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    bin_dir: Path = BIN  # another checkout's ``.venv/bin`` measures that build

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        """The process that applies receipts counts the deliveries."""
        port = self.worker_port if self.split else self.port
        return f"http://127.0.0.1:{port}/metrics"

    @property
    def split(self) -> bool:
        return self.layout.worker_apart

    def cli(self, *args: str) -> str:
        done = subprocess.run([str(self.bin_dir / "tidings"), *args], env=self.env, check=True,
                              capture_output=True, timeout=120)
        return done.stdout.decode()

    def start(self) -> None:
        log = open(Path(self.env["TIDINGS_DATA_DIR"]) / "server.log", "ab")  # noqa: SIM115
        layout = self.layout
        # On SQLite only the webhook workers deliver webhooks, when there are some.
        full = (dict(self.env, TIDINGS_WEBHOOK_LOOPS="0")
                if layout.webhook_workers and layout.store == "sqlite" else self.env)
        if self.split:
            self.worker_port = free_port()
            self.worker = subprocess.Popen(
                [str(self.bin_dir / "tidings"), "worker", "--port", str(self.worker_port)],
                env=dict(full, TIDINGS_API_PROCESSES="1"), stdout=log, stderr=log)
            _wait_ready(f"http://127.0.0.1:{self.worker_port}/healthz")  # it migrated
        env = dict(self.env, TIDINGS_RUN_WORKERS="false") if self.split else full
        self.process = subprocess.Popen(
            [str(self.bin_dir / "tidings"), "serve", "--processes", str(layout.api_processes)],
            env=env, stdout=log, stderr=log)
        _wait_ready(f"{self.url}/readyz")
        for _ in range(layout.webhook_workers):
            self.helpers.append(self._webhook_worker(log))

    def _webhook_worker(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        port = free_port()
        process = subprocess.Popen(
            [str(self.bin_dir / "tidings"), "worker", "--port", str(port),
             "--jobs", "webhook.deliver"],
            env=dict(self.env, TIDINGS_API_PROCESSES="1"), stdout=log, stderr=log)
        _wait_ready(f"http://127.0.0.1:{port}/healthz")
        return process

    def stop(self) -> None:
        for process in (self.process, self.worker, *self.helpers):
            if process and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def make_server(data_dir: Path, database_url: str, layout: Layout = LAYOUTS["sqlite"],
                **settings: str) -> Server:
    port = free_port()
    # The keys inside the run's own folder, so that removing it removes them too.
    env = dict(os.environ, TIDINGS_DATA_DIR=str(data_dir), TIDINGS_DATABASE_URL=database_url,
               TIDINGS_KEY_DIR=str(data_dir / "keys"),
               TIDINGS_PORT=str(port), TIDINGS_LOG_LEVEL="WARNING", TIDINGS_SMPP_PORT="0",
               TIDINGS_WEBHOOK_ALLOW_PRIVATE="true")  # the receivers are on loopback
    env.update({f"TIDINGS_{k.upper()}": v for k, v in settings.items()})
    data_dir.mkdir(parents=True, exist_ok=True)
    return Server(env, port, layout)


def provision(server: Server, webhook_url: str | None,
              webhook_statuses: str | None = None) -> dict[str, str]:
    args = ["accounts", "create", "--name", "Bench", "--json"]
    if webhook_url:
        args += ["--webhook-url", webhook_url]
    if webhook_statuses:
        args += ["--webhook-statuses", webhook_statuses]
    account: dict[str, str] = json.loads(server.cli(*args))
    return account
