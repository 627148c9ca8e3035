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
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    env: dict[str, str]
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        done = subprocess.run([str(BIN / "tidings"), *args], env=self.env, check=True,
                              capture_output=True, timeout=120)
        return done.stdout.decode()

    def start(self) -> None:
        log = open(Path(self.env["TIDINGS_DATA_DIR"]) / "server.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen([str(BIN / "tidings"), "serve"], env=self.env,
                                        stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def make_server(data_dir: Path, database_url: str, **settings: str) -> Server:
    port = free_port()
    env = dict(os.environ, TIDINGS_DATA_DIR=str(data_dir), TIDINGS_DATABASE_URL=database_url,
               TIDINGS_PORT=str(port), TIDINGS_LOG_LEVEL="WARNING")
    env.update({f"TIDINGS_{k.upper()}": v for k, v in settings.items()})
    data_dir.mkdir(parents=True, exist_ok=True)
    return Server(env, port)


def provision(server: Server, webhook_url: str | None) -> dict[str, str]:
    args = ["accounts", "create", "--name", "Bench", "--json"]
    if webhook_url:
        args += ["--webhook-url", webhook_url]
    account: dict[str, str] = json.loads(server.cli(*args))
    return account
