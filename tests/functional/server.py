"""Run the real ``tidings`` console script: a ``tidings serve`` process and CLI commands.

Each ``TidingsServer`` has its own data directory, a free loopback port and a log file
that collects the process's stderr across restarts. Nothing here is shared between tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

import httpx
from aiohttp import web

from tests.functional.cli_forks import by_exec, run_forked

TIDINGS = str(Path(sys.executable).with_name("tidings")) if Path(
    sys.executable).with_name("tidings").exists() else (shutil.which("tidings") or "tidings")
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tidings_env(data_dir: Path, **settings: str | float | int) -> dict[str, str]:
    """The parent environment without any TIDINGS_* variable, plus these settings.

    ``settings`` are given without the prefix: ``tidings_env(d, job_lease_seconds=2)``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env["TIDINGS_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    env["TIDINGS_SMPP_PORT"] = "0"  # tests that want the SMPP server pick a free port
    env["TIDINGS_WEBHOOK_ALLOW_PRIVATE"] = "true"  # the tests' receivers are on loopback
    for key, value in settings.items():
        env[f"TIDINGS_{key.upper()}"] = str(value)
    return env


def run_cli(env: Mapping[str, str], *args: str, timeout: float = 120.0,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``tidings ARGS`` to completion in a process of its own (forked from one that
    imported the CLI already: ``cli_forks.py``); never raises on a non-zero exit."""
    if not by_exec():
        return run_forked(args, env, timeout=timeout, stdin=stdin)
    return subprocess.run([TIDINGS, *args], env=dict(env), capture_output=True, text=True,
                          timeout=timeout, input=stdin, check=False)


async def run_cli_async(env: Mapping[str, str], *args: str,
                        timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``run_cli`` that keeps the event loop (and servers living on it) running."""
    proc = await asyncio.create_subprocess_exec(
        TIDINGS, *args, env=dict(env), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return subprocess.CompletedProcess([TIDINGS, *args], proc.returncode,
                                       out.decode(), err.decode())


class TidingsServer:
    """One ``tidings serve`` (or ``tidings worker``) process that can be started, killed
    and restarted. It is ready when ``ready_path`` answers 200 on its port."""

    def __init__(self, data_dir: Path, env: Mapping[str, str], *,
                 log_path: Path | None = None, port: int | None = None,
                 command: Sequence[str] = ("serve",), ready_path: str = "/readyz") -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.command, self.ready_path = list(command), ready_path
        self.env = dict(env)
        self.env["TIDINGS_DATA_DIR"] = str(data_dir)
        self.env["TIDINGS_HOST"] = "127.0.0.1"
        self.env["TIDINGS_PORT"] = str(self.port)
        self.env["TIDINGS_WORKER_PORT"] = str(self.port)
        self.log_path = log_path or data_dir.parent / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        """Start the process without waiting for it to be ready."""
        assert not self.running, "the server is already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [TIDINGS, *self.command], env=self.env, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=self._log, start_new_session=True)
        self.starts += 1

    def start(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        self.spawn()
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}{self.ready_path}", timeout=1.0).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready in {timeout}s\n{self.log_tail()}")
            time.sleep(0.05)

    async def start_async(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """``start`` without blocking the event loop (a webhook receiver may live on it)."""
        self.spawn()
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                self._check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}{self.ready_path}")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"server not ready in {timeout}s\n{self.log_tail()}")
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        proc = self._require()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        self._close_log()

    def stop(self) -> int | None:
        """SIGTERM and wait for a clean exit (SIGKILL if it does not come); the exit code."""
        if self.proc is None:
            return None
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        self._close_log()
        return proc.returncode

    async def stop_async(self) -> int | None:
        return await asyncio.to_thread(self.stop)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") \
            if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def _require(self) -> subprocess.Popen[bytes]:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError("the server is not running")
        return self.proc

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"tidings {self.command[0]} exited with {self.proc.returncode}\n"
                               f"{self.log_tail()}")

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> TidingsServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@asynccontextmanager
async def post_endpoint(handle: Callable[[web.Request], Awaitable[web.Response]],
                        path: str = "/hook") -> AsyncIterator[str]:
    """A real HTTP endpoint on a free loopback port answering POSTs to ``path`` with
    ``handle``: yields its URL, and stops it on exit."""
    app = web.Application()
    app.router.add_post(path, handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        await runner.cleanup()
